"""Which deletion tells methods from a random map: deletion to black, onto the dataset mean, onto a blurred copy,
and insertion, for five methods and five random maps on skimage photos (efficientnet_lite0, one thread).

Usage:
    OMP_NUM_THREADS=1 python bench/deletion_canvas.py      # prints per-photo AUCs and how often each method
                                                          # beats the random maps' mean; JSON to /tmp/canvas.json
"""
import torch

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.evaluate.faithfulness import deletion_insertion, random_maps

torch.set_num_threads(1)
h = zoo.load("efficientnet_lite0", device="cpu")
names = ["chelsea", "coffee", "rocket", "astronaut", "motorcycle"]
names = [n for n in names if n in zoo.sample_names()] 
print(names, flush=True)
x = h.prepare([zoo.load_image(n) for n in names])
methods = {
  "gradcam": lambda: interpret.gradcam(h, x),
  "gradient": lambda: interpret.saliency(h, x),
  "guided_backprop": lambda: interpret.guided_backprop(h, x),
  "integrated_gradients": lambda: interpret.integrated_gradients(h, x, steps=16),
  "occlusion": lambda: interpret.occlusion(h, x, window=32, stride=16),
}
maps = {k: f() for k, f in methods.items()}
for s in range(5):
    maps[f"random{s}"] = random_maps(x, seed=s)
res = {}
for canvas in ["black", "dataset_mean", "blur"]:
    for k, m in maps.items():
        c = deletion_insertion(h, x, m, deletion_to=canvas, steps=16)
        res[(canvas, k)] = c.deletion_auc
        if canvas == "black": res[("insertion", k)] = c.insertion_auc
    print(canvas, "done", flush=True)
import json

out = {f"{a}|{b}": v.tolist() if hasattr(v, "tolist") else str(v) for (a, b), v in res.items()}
json.dump(out, open("/tmp/canvas.json", "w"))
for metric in ["black", "dataset_mean", "blur", "insertion"]:
    rnd = torch.stack([res[(metric, f"random{s}")] for s in range(5)])
    print(f"\n{metric}: random mean per image {rnd.mean(0).numpy().round(3)} sd {rnd.std(0).numpy().round(3)}")
    for k in methods:
        v = res[(metric, k)]
        better = (v < rnd.mean(0)) if metric != "insertion" else (v > rnd.mean(0))
        print(f"  {k:22s} {v.numpy().round(3)}  beats random on {int(better.sum())}/{len(names)}")

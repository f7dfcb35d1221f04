"""GPU micro-benchmarks behind calibration/data/h200/h200-micro.json: Linear layers,
3x3/2 max-pools, ReLU and RGB-stem convolutions (with and without bias) at batch
1/16/64, fp32 and fp16, each timed as the mean of 50 CUDA-graph replays (cudnn.benchmark
on) so that no host dispatch is included. Run on the GPU machine:

    python scripts/gpu_microbench.py OUT.json
"""
import json, sys, torch
torch.backends.cudnn.benchmark = True
def ms(fn, n=50):
    for _ in range(5): fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g): fn()
    g.replay(); torch.cuda.synchronize()
    s.record()
    for _ in range(n): g.replay()
    e.record(); e.synchronize()
    return s.elapsed_time(e) / n * 1000
out = {}
with torch.inference_mode():
    for dt in (torch.float32, torch.float16):
        for b in (1, 16, 64):
            for (i, o) in ((9216, 4096), (4096, 4096), (512, 1000), (2048, 1000)):
                lin = torch.nn.Linear(i, o).cuda().to(dt); x = torch.randn(b, i, device="cuda", dtype=dt)
                out[f"linear {i}x{o} b{b} {dt}"] = ms(lambda: lin(x))
        for b in (1, 16, 64):
            for (c, h) in ((64, 111), (64, 112), (128, 55), (256, 27), (64, 55)):
                x = torch.randn(b, c, h, h, device="cuda", dtype=dt)
                mp = torch.nn.MaxPool2d(3, 2, ceil_mode=True)
                out[f"maxpool3s2 {c}x{h} b{b} {dt}"] = ms(lambda: mp(x))
                out[f"relu {c}x{h} b{b} {dt}"] = ms(lambda: torch.relu(x))
            for (ci, co, k, s_, h) in ((3, 64, 3, 2, 224), (3, 64, 11, 4, 224), (3, 64, 7, 2, 224), (4, 64, 3, 2, 224), (8, 64, 3, 2, 224), (64, 64, 3, 1, 56)):
                x = torch.randn(b, ci, h, h, device="cuda", dtype=dt)
                for bias in (True, False):
                    conv = torch.nn.Conv2d(ci, co, k, s_, k // 2, bias=bias).cuda().to(dt)
                    out[f"conv {ci}-{co} k{k}s{s_} {h} bias={bias} b{b} {dt}"] = ms(lambda: conv(x))
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(len(out), "micro rows")

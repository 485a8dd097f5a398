"""``mixgemm bench --layer llama3-8b``: a decoder layer's projections as a model runs them.

The seven projections of a Hugging Face decoder layer (q, k, v, o, gate, up, down: separate
Linears) back to back for several layers with distinct weights (so nothing stays in L2), at decode
batch sizes, timed eagerly and as CUDA-graph replays (how serving engines run decode), against the
dense bf16 layers they replace (torch.nn.functional.linear, i.e. cuBLAS).
"""
from __future__ import annotations

import torch

from .bench import event_us, graph_us

MODELS = {  # (name, N = out features, K = in features) per projection, as in the HF configs
    "llama3-8b": [("q", 4096, 4096), ("k", 1024, 4096), ("v", 1024, 4096), ("o", 4096, 4096),
                  ("gate", 14336, 4096), ("up", 14336, 4096), ("down", 4096, 14336)],
    "llama3-70b": [("q", 8192, 8192), ("k", 1024, 8192), ("v", 1024, 8192), ("o", 8192, 8192),
                   ("gate", 28672, 8192), ("up", 28672, 8192), ("down", 8192, 28672)],
}
# Which projections read the same input tensor, as in the model: q, k, v read the attention norm's
# output; o the attention output; gate, up the MLP norm's output; down the activation product.
INPUT_OF = {"q": "attn", "k": "attn", "v": "attn", "o": "o", "gate": "mlp", "up": "mlp", "down": "down"}


def run_layer(model: str, batches: list[int], layers: int, weight_dtype: str, group_size: int,
              act: torch.dtype = torch.bfloat16) -> dict:
    import mixgemm  # noqa: PLC0415
    from mixgemm.testing import assert_close_to_reference, reference  # noqa: PLC0415
    torch.manual_seed(0)
    projections = MODELS[model]
    dense, packed = [], []
    for _ in range(layers):
        for _name, n, k in projections:
            w = torch.randn(n, k, device="cuda", dtype=act) * 0.02
            dense.append(w)
            packed.append(mixgemm.quantize(w, weight_dtype, group_size, act_dtype=act))
    bf16_bytes = sum(w.numel() * w.element_size() for w in dense[:len(projections)])
    w4_bytes = sum(pw.nbytes() for pw in packed[:len(projections)])
    rows = []
    for m in batches:
        # one input tensor per (layer, role): projections share an input only where the model does
        xs = [{INPUT_OF[name]: torch.randn(m, k, device="cuda", dtype=act) for name, _, k in projections}
              for _ in range(layers)]
        order = [xs[layer][INPUT_OF[name]] for layer in range(layers) for name, _, _ in projections]
        for x, pw in zip(order[:len(projections)], packed):
            assert_close_to_reference(mixgemm.gemm(x, pw), reference(x, pw), f"layer bench M={m}")

        def run_dense():
            for x, w in zip(order, dense):
                torch.nn.functional.linear(x, w)

        def run_mixgemm():
            for x, pw in zip(order, packed):
                mixgemm.gemm(x, pw)

        row = {"m": m, "kernels": sorted({mixgemm.explain(x, pw).choice.spec.name()
                                          for x, pw in zip(order[:len(projections)], packed)})}
        for label, fn in (("bf16", run_dense), ("mixgemm", run_mixgemm)):
            row[f"{label}_graph_us"] = graph_us(fn) / layers
            row[f"{label}_eager_us"] = event_us(fn) / layers
        row["graph_speedup"] = row["bf16_graph_us"] / row["mixgemm_graph_us"]
        row["eager_speedup"] = row["bf16_eager_us"] / row["mixgemm_eager_us"]
        rows.append(row)
        print(format_layer_row(model, row), flush=True)
    return {"model": model, "layers": layers, "weight_dtype": weight_dtype, "group_size": group_size,
            "act": str(act).removeprefix("torch."), "bf16_bytes_per_layer": bf16_bytes,
            "w4_bytes_per_layer": w4_bytes, "rows": rows}


def format_layer_row(model: str, r: dict) -> str:
    return (f"{model} M={r['m']:<3} per layer: graph bf16 {r['bf16_graph_us']:7.1f} us, mixgemm "
            f"{r['mixgemm_graph_us']:7.1f} us ({r['graph_speedup']:.2f}x); eager bf16 {r['bf16_eager_us']:7.1f} us, "
            f"mixgemm {r['mixgemm_eager_us']:7.1f} us ({r['eager_speedup']:.2f}x)")


def layer_markdown(result: dict, ceilings: dict | None = None) -> str:
    bw = (ceilings or {}).get("copy_bytes_per_s", 3.0e12)
    floor16 = result["bf16_bytes_per_layer"] / bw * 1e6
    floor4 = result["w4_bytes_per_layer"] / bw * 1e6
    lines = [f"{result['model']}: q, k, v, o, gate, up, down projections (separate Linears), {result['layers']} layers "
             f"with distinct weights, {result['weight_dtype']} group {result['group_size']}, {result['act']} activations; "
             f"microseconds per layer (median). Weight bytes per layer: bf16 {result['bf16_bytes_per_layer'] / 1e6:.0f} MB "
             f"(floor {floor16:.1f} us at {bw / 1e12:.2f} TB/s), int4 {result['w4_bytes_per_layer'] / 1e6:.0f} MB "
             f"(floor {floor4:.1f} us): the bytes allow {floor16 / floor4:.2f}x.", "",
             "| M | bf16 graph | mixgemm graph | speedup | bf16 eager | mixgemm eager | speedup | kernels |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        kernels = ", ".join(f"`{k.removeprefix('mixgemm_')}`" for k in r["kernels"])
        lines.append(f"| {r['m']} | {r['bf16_graph_us']:.1f} | {r['mixgemm_graph_us']:.1f} | {r['graph_speedup']:.2f}x | "
                     f"{r['bf16_eager_us']:.1f} | {r['mixgemm_eager_us']:.1f} | {r['eager_speedup']:.2f}x | {kernels} |")
    return "\n".join(lines) + "\n"

"""A long run of the params.yaml training recipe, with held-out evaluations along the way.

For a lent GPU machine, which has PyTorch and transformers but not MLflow or DVC: the real model,
loss (per-source centring and offset penalty), mixture sampler and curriculum, in a plain loop
instead of `metaembed train`. It answers one question, whether the default learns with more steps
(docs/learnability.md); it registers nothing. Env: PARAMS (default params.yaml), STEPS, EVAL_AT (steps, comma-separated), NEVAL
(queries per MMEB subset, K = 100), WORKERS, OUT (folder for long.json). Run from the repo root:
    PYTHONPATH=src STEPS=3000 EVAL_AT=300,1000,3000 python scripts/long_run.py
Each EVAL line holds, per subset and budget, [P@1, twin accuracy, P@1 against the non-twins] in %.
"""
import json, os, time
import numpy as np, torch
from pathlib import Path
E = os.environ.get
torch.manual_seed(0)
from metaembed.backbones import load_backbone, BackboneParams
from metaembed.model import MetaEmbed, ModelParams
from metaembed.losses import MatryoshkaMultiVectorLoss
from metaembed.training.sampler import PreparedTrainSet, MixtureBatchSampler
from metaembed.training.datamodule import negatives_per_query, _TrainCollator
from metaembed.training.module import source_rows
from metaembed.training.schedule import warmup_cosine
from metaembed.data.manifests import read_mmeb_eval, load_index
from metaembed.training.collator import encode_sides
from metaembed.config import load_params
from metaembed.metrics import precision_at_1
from metaembed.scoring import maxsim

P = load_params(E("PARAMS", "params.yaml")); T, L = P["train"], P["loss"]
STEPS = int(E("STEPS", "3000")); EVAL_AT = [int(x) for x in E("EVAL_AT", "300,1000,3000").split(",")]
NEVAL = int(E("NEVAL", "50")); WORKERS = int(E("WORKERS", "12")); DEV = "cuda" if torch.cuda.is_available() else "cpu"
PREP = Path(P["prepare"]["out_dir"])
b = load_backbone(BackboneParams(**P["backbone"]))
m = MetaEmbed(b, ModelParams(**P["model"])).to(DEV).train()
ds = PreparedTrainSet(PREP)
smp = MixtureBatchSampler(ds, T["batch_size"], T["sub_batch_size"], STEPS, T["seed"])
coll = _TrainCollator(b.processor, T["hard_negatives"])
loss_fn = MatryoshkaMultiVectorLoss(groups=L["groups"], temperature=L["temperature"], scale_by_query_vectors=L["scale_by_query_vectors"],
                                    num_query_vectors=P["model"]["num_query_meta"], num_candidate_vectors=P["model"]["num_candidate_meta"])
decay, nod = [], []
for n_, p_ in m.named_parameters():
    (nod if p_.ndim < 2 or "norm" in n_ else decay).append(p_)
opt = torch.optim.AdamW([{"params": decay, "weight_decay": T["weight_decay"]}, {"params": nod, "weight_decay": 0.0}], lr=T["lr"], betas=tuple(T["betas"]))
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, T["warmup_steps"], STEPS, T["min_lr_ratio"]))

class Steps(torch.utils.data.Dataset):
    def __len__(self): return STEPS
    def __getitem__(self, step): return coll([ds[i] for i in smp.batch(step)])
loader = torch.utils.data.DataLoader(Steps(), batch_size=None, num_workers=WORKERS, prefetch_factor=4 if WORKERS else None)

index = load_index(PREP)["mmeb"]
subsets = sorted(index)
class EvalSet(torch.utils.data.Dataset):
    def __init__(self): self.items = [(s, q) for s in subsets for q in read_mmeb_eval(PREP, s)[:NEVAL]]
    def __len__(self): return len(self.items)
    def __getitem__(self, i):
        s, q = self.items[i]
        return s, q.twin_indices, encode_sides(b.processor, "query", [q.query]), encode_sides(b.processor, "candidate", list(q.candidates))
t0 = time.time()
evalset = list(torch.utils.data.DataLoader(EvalSet(), batch_size=None, num_workers=WORKERS))
print(f"eval inputs collated: {len(evalset)} queries in {time.time()-t0:.0f}s", flush=True)

def calibrate(step):
    from metaembed.training.collator import PairCollator
    pc = PairCollator(b.processor)
    def batches():
        for st in range(max(0, step - T["calibration_batches"]), step):
            bt = pc([ds[i] for i in smp.batch(st)])
            yield "query", {k: v.to(DEV) if torch.is_tensor(v) else v for k, v in bt["query"].items()}
            yield "candidate", {k: v.to(DEV) if torch.is_tensor(v) else v for k, v in bt["positive"].items()}
    m.calibrate_centering(batches())

def evaluate(step):
    calibrate(step); m.eval()
    budgets = {f"{r_q}x{r_c}": (r_q, r_c) for r_q, r_c in P["evaluate"]["budgets"]}
    per = {}
    with torch.inference_mode():
        for s, twins_, qin, cin in evalset:
            q, qm = m("query", **qin); c, cm = m("candidate", **cin)
            twins = [0] + [i for i in (twins_ or ()) if i != 0]
            others = [0] + [i for i in range(c.shape[0]) if i not in twins]
            for k, bud in budgets.items():
                sc = maxsim(q, c, budget=bud, q_mask=qm, c_mask=cm).float()
                d = per.setdefault(s, {}).setdefault(k, [[], [], []])
                d[0].append(precision_at_1(sc, 0).item()); d[1].append(precision_at_1(sc[:, twins], 0).item()); d[2].append(precision_at_1(sc[:, others], 0).item())
    m.train()
    res = {"step": step, "subsets": {s: {k: [round(100 * float(np.mean(x)), 1) for x in v] for k, v in d.items()} for s, d in per.items()}}
    res["mean"] = {k: [round(float(np.mean([res["subsets"][s][k][j] for s in per])), 2) for j in range(3)] for k in budgets}
    print("EVAL", json.dumps(res), flush=True)
    return res

results, t0, losses = [], time.time(), []
for step, batch in enumerate(loader):
    rows = source_rows(batch["sources"], batch["negative_index"])
    mv = lambda d: {k: v.to(DEV, non_blocking=True) if torch.is_tensor(v) else v for k, v in d.items()}
    q, qm = m("query", **mv(batch["query"]), groups=rows["pairs"]); p, pm = m("candidate", **mv(batch["positive"]), groups=rows["pairs"])
    neg = negm = None
    if batch.get("negative") is not None:
        ni = batch["negative_index"].to(DEV)
        n_, nm_ = m("candidate", **mv(batch["negative"]), groups=rows["negatives"]); neg, negm = negatives_per_query(n_, nm_, ni, q.shape[0])
    out = loss_fn(q, p, neg, qm, pm, negm); pen = m.pop_offset_penalty()
    opt.zero_grad(); (out.loss + L["offset_penalty"] * pen).backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), T["grad_clip"]); opt.step(); sched.step()
    losses.append(out.loss.item())
    if step % 100 == 0: print(step, f"loss={np.mean(losses[-100:]):.3f} pen={pen.item():.3f} t={time.time()-t0:.0f}s", flush=True)
    if step + 1 in EVAL_AT:
        te = time.time(); results.append(evaluate(step + 1)); results[-1]["train_s"] = round(te - t0); results[-1]["eval_s"] = round(time.time() - te)
out = Path(os.environ.get("OUT", "/tmp")); (out / "long.json").write_text(json.dumps({"steps": STEPS, "device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu", "results": results}, indent=1))

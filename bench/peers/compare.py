"""Puts RecBole's JSON (recbole_run.py) beside this repository's runs of the same models.

  python bench/peers/compare.py --runs=runs/peers --out=runs/peers/beauty.json

Reads RUNS/recbole_MODEL.json and RUNS/ours_MODEL/results.json for each MODEL
of --models (GRU4Rec and SASRec); writes seconds per epoch of both (the fastest epoch of
each, which other jobs on the machine slowed least, and the median), their
ratio, the training time to the best validation epoch at that speed, and the
test metrics of that epoch (ours with the history left in, as RecBole ranks
for sequential models).
"""

import argparse
import json
import os
import statistics

OURS = {"GRU4Rec": "ours_GRU4Rec", "SASRec": "ours_SASRec"}
METRICS = {"recall@10": "hr@10", "ndcg@10": "ndcg@10", "mrr@10": "mrr@10"}


def ours_epoch_seconds(workdir: str, steps_per_epoch: int) -> list[float]:
  """Seconds of each epoch of training, from the trainer's running totals
  (`train_seconds` over `timed_steps`, which leave out evaluation and the first
  step's compilation) at each epoch's last step, scaled to a whole epoch. The
  run must validate once per epoch, so that a logged record ends each epoch."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    ends = [r for r in map(json.loads, f)
            if r["split"] == "train" and r["step"] % steps_per_epoch == 0]
  out, seconds, steps = [], 0.0, 0
  for record in ends:
    if record["timed_steps"] > steps:
      out.append(steps_per_epoch * (record["train_seconds"] - seconds)
                 / (record["timed_steps"] - steps))
    seconds, steps = record["train_seconds"], record["timed_steps"]
  return out


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--runs", required=True)
  parser.add_argument("--models", default=",".join(OURS), help="Comma-separated, of " + ", ".join(OURS))
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  rows = []
  for model in args.models.split(","):
    workdir = OURS[model]
    with open(os.path.join(args.runs, f"recbole_{model}.json")) as f:
      peer = json.load(f)
    with open(os.path.join(args.runs, workdir, "results.json")) as f:
      results = json.load(f)
    with open(os.path.join(args.runs, workdir, "config.json")) as f:
      config = json.load(f)
    steps_per_epoch = results["data"]["train_rows"] // config["batch_size"]
    ours_epochs = ours_epoch_seconds(os.path.join(args.runs, workdir), steps_per_epoch)
    # The fastest epoch of each side: the one least slowed by other jobs on the
    # machine (medians beside).
    peer_epoch, ours_epoch = min(peer["epoch_seconds"]), min(ours_epochs)
    ours_best_epoch = results["evaluated_step"] / steps_per_epoch
    rows.append({
        "model": model,
        "recbole_epochs": peer["epochs"], "recbole_best_epoch": peer["best_epoch"],
        "ours_epochs": results["steps"] / steps_per_epoch, "ours_best_epoch": ours_best_epoch,
        "recbole_epoch_seconds": peer_epoch, "ours_epoch_seconds": ours_epoch,
        "ours_over_recbole": ours_epoch / peer_epoch,
        "recbole_median_epoch_seconds": statistics.median_high(peer["epoch_seconds"]),
        "ours_median_epoch_seconds": statistics.median_high(ours_epochs),
        "recbole_seconds_to_best": peer["best_epoch"] * peer_epoch,
        "ours_seconds_to_best": ours_best_epoch * ours_epoch,
        "recbole_test": {k: peer["test"][k] for k in METRICS},
        "ours_test": {k: results["test"][v] for k, v in METRICS.items()},
    })
  report = {"dataset": "amazon-beauty (BERT4Rec release)", "rows": rows}
  with open(args.out + ".tmp", "w") as f:
    json.dump(report, f, indent=2)
  os.replace(args.out + ".tmp", args.out)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  main()

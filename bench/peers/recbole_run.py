"""RecBole 1.2.1 on a `sasrec:` file: epoch times and test metrics as JSON.

Runs in the peers' own virtual environment (bench/peers/requirements.txt), never
in this repository's. Invoked by bench/peers/run.sh:

  python bench/peers/recbole_run.py --data=../shared/data/amazon-beauty/beauty.txt \
      --model=GRU4Rec --epochs=2 --out=runs/peers/recbole_GRU4Rec.json

The file becomes a RecBole atomic dataset in a temporary directory (timestamp =
line number, so the order is the file's), split leave-one-out with full
ranking, CE loss over all items, 50 input items, batch 128, lr 1e-3. Up to
--epochs epochs, validation NDCG@10 after each, RecBole's early stopping
(--patience epochs without a gain); the test metrics are those of the best
validation epoch, as ours with config.select_metric. RecBole
masks no history for sequential models (its full-sort loader passes no
history index for them), so its numbers stand beside our plain keys
("ndcg@10"), not the "unseen_" ones. Sizes match this repository's configs.
"""

import argparse
import json
import os
import tempfile
import time

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.trainer import Trainer
from recbole.utils import get_model, init_seed

SIZES = {
    # configs/cmnrec.py:beauty with model.kind=gru4rec and model.tie_embedding=True (embed
    # 64, hidden 128 projected back to 64, scored against the item embedding, dropout 0.3).
    "GRU4Rec": dict(embedding_size=64, hidden_size=128, num_layers=1, dropout_prob=0.3),
    # configs/sasrec.py:beauty (D=64, 2 blocks, 1 head, FFN width D, dropout 0.2).
    "SASRec": dict(hidden_size=64, inner_size=64, n_layers=2, n_heads=1,
                   hidden_dropout_prob=0.2, attn_dropout_prob=0.2, hidden_act="relu",
                   layer_norm_eps=1e-6, initializer_range=0.02),
}


def atomic(data: str, directory: str) -> None:
  """`user item` lines -> DIRECTORY/beauty/beauty.inter (timestamp = line)."""
  os.makedirs(os.path.join(directory, "beauty"))
  with open(data) as src, open(os.path.join(directory, "beauty", "beauty.inter"), "w") as dst:
    dst.write("user_id:token\titem_id:token\ttimestamp:float\n")
    for line_number, line in enumerate(src, 1):
      user, item = line.split()
      dst.write(f"{user}\t{item}\t{line_number}\n")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", required=True)
  parser.add_argument("--model", choices=tuple(SIZES), required=True)
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--patience", type=int, default=10)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  out = os.path.abspath(args.out)
  with tempfile.TemporaryDirectory() as directory:
    atomic(args.data, directory)
    # RecBole writes log/ and log_tensorboard/ into the working directory.
    os.chdir(directory)
    config = Config(model=args.model, dataset="beauty", config_dict={
        "data_path": directory, "checkpoint_dir": os.path.join(directory, "saved"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 50, "loss_type": "CE", "train_neg_sample_args": None,
        "epochs": args.epochs, "eval_step": 1, "stopping_step": args.patience,
        "train_batch_size": 128, "eval_batch_size": 256, "learning_rate": 1e-3,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full",
                      "group_by": "user"},
        "metrics": ["Recall", "NDCG", "MRR"], "topk": [10], "valid_metric": "NDCG@10",
        "device": "cpu", "use_gpu": False, "show_progress": False, "seed": 0,
        "reproducibility": True, **SIZES[args.model]})
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    epoch_seconds = []
    train_epoch = trainer._train_epoch  # timed around, not changed

    def timed(*a, **k):
      start = time.perf_counter()
      out = train_epoch(*a, **k)
      epoch_seconds.append(time.perf_counter() - start)
      return out

    trainer._train_epoch = timed
    # RecBole pickles its best-validation checkpoint, which torch >= 2.6 only
    # loads with weights_only=False.
    load = torch.load
    torch.load = lambda *a, **k: load(*a, **{**k, "weights_only": False})
    best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
  report = {"peer": "recbole 1.2.1", "model": args.model, "max_epochs": args.epochs,
            # cur_step: validations since the best one (one per epoch here).
            "epochs": len(epoch_seconds), "best_epoch": len(epoch_seconds) - trainer.cur_step,
            "best_valid_ndcg@10": float(best_valid), "epoch_seconds": epoch_seconds,
            "test": {k: float(v) for k, v in test.items()},
            "sizes": SIZES[args.model]}
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out + ".tmp", "w") as f:
    json.dump(report, f, indent=2)
  os.replace(out + ".tmp", out)
  print(json.dumps(report))


if __name__ == "__main__":
  main()

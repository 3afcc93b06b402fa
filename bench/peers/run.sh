#!/usr/bin/env bash
# The peer benchmark: RecBole 1.2.1's GRU4Rec and SASRec and ours on Amazon Beauty, with the
# same split (leave-one-out), max length (50 inputs), sizes, loss (full-softmax CE), batch
# and epochs, one after the other on this machine. Writes runs/peers/beauty.json.
#
#   python3 -m venv ../peers-venv && ../peers-venv/bin/pip install -r bench/peers/requirements.txt
#   PEERS_PYTHON=../peers-venv/bin/python EPOCHS=2 bench/peers/run.sh
#
# Run from the repository root with this repository's environment active. Nothing here is
# part of requirements.txt or CI.
set -euo pipefail
DATA=${DATA:-../shared/data/amazon-beauty/beauty.txt}
EPOCHS=${EPOCHS:-2}
OUT=${OUT:-runs/peers}
PEERS_PYTHON=${PEERS_PYTHON:-../peers-venv/bin/python}
mkdir -p "$OUT"
for MODEL in GRU4Rec SASRec; do
  [ -f "$OUT/recbole_$MODEL.json" ] ||
    "$PEERS_PYTHON" bench/peers/recbole_run.py --data="$DATA" --model=$MODEL \
      --epochs="$EPOCHS" --out="$OUT/recbole_$MODEL.json"
done
COMMON=(--config.dataset="sasrec:$DATA" --config.num_epochs="$EPOCHS" --config.eval_every=0
        --config.select_metric= --config.protocol.sampled=)
python -m launch.train --config=configs/cmnrec.py:beauty --config.model.kind=gru4rec \
  "${COMMON[@]}" --workdir="$OUT/ours_GRU4Rec"
python -m launch.train --config=configs/sasrec.py:beauty "${COMMON[@]}" \
  --workdir="$OUT/ours_SASRec"
python bench/peers/compare.py --runs="$OUT" --out="$OUT/beauty.json"

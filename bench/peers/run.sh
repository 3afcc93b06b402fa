#!/usr/bin/env bash
# The peer benchmark: RecBole 1.2.1's GRU4Rec and SASRec and ours on Amazon Beauty, with the
# same split (leave-one-out), max length (50 inputs), sizes, loss (full-softmax CE) and
# batch, one after the other on this machine. Each side validates after every epoch and
# reports the test metrics of its best validation epoch: RecBole for up to RECBOLE_EPOCHS
# (early stopping after PATIENCE epochs without a gain), ours for OURS_EPOCHS (an epoch
# here is about 12x fewer optimizer steps: every window once, where RecBole makes every
# prefix a sample). Writes runs/peers/beauty.json. MODELS="GRU4Rec" runs one of the two
# (a RecBole epoch of the full file takes 13-17 minutes on 2 cores).
#
#   python3 -m venv ../peers-venv && ../peers-venv/bin/pip install -r bench/peers/requirements.txt
#   PEERS_PYTHON=../peers-venv/bin/python RECBOLE_EPOCHS=2 OURS_EPOCHS=2 bench/peers/run.sh
#
# Run from the repository root with this repository's environment active. Nothing here is
# part of requirements.txt or CI.
set -euo pipefail
DATA=${DATA:-../shared/data/amazon-beauty/beauty.txt}
RECBOLE_EPOCHS=${RECBOLE_EPOCHS:-2}
OURS_EPOCHS=${OURS_EPOCHS:-2}
PATIENCE=${PATIENCE:-10}
OUT=${OUT:-runs/peers}
PEERS_PYTHON=${PEERS_PYTHON:-../peers-venv/bin/python}
MODELS=${MODELS:-GRU4Rec SASRec}
mkdir -p "$OUT"
for MODEL in $MODELS; do
  [ -f "$OUT/recbole_$MODEL.json" ] ||
    "$PEERS_PYTHON" bench/peers/recbole_run.py --data="$DATA" --model=$MODEL \
      --epochs="$RECBOLE_EPOCHS" --patience="$PATIENCE" --out="$OUT/recbole_$MODEL.json"
done
# Steps per epoch of ours (training windows // batch), to validate once per epoch.
EPOCH_STEPS=$(python -c "
from configs import sasrec
from seqrec import experiment, registry
c = sasrec.get_config('beauty')
c.dataset = 'sasrec:$DATA'
print(len(registry.build(c, experiment.load_data(c)).train['seq']) // c.batch_size)")
# RecBole ranks with the history left in for sequential models: our plain keys.
COMMON=(--config.dataset="sasrec:$DATA" --config.num_epochs="$OURS_EPOCHS"
        --config.eval_every="$EPOCH_STEPS" --config.select_metric=ndcg@10
        --config.protocol.sampled=)
# RecBole's GRU4Rec projects the GRU's output to the embedding width and scores items
# against the item embedding itself: our tie_embedding.
declare -A OURS=([GRU4Rec]="configs/cmnrec.py:beauty --config.model.kind=gru4rec --config.model.tie_embedding=True"
                 [SASRec]="configs/sasrec.py:beauty")
for MODEL in $MODELS; do
  # shellcheck disable=SC2086  # the config and its model overrides are separate words
  python -m launch.train --config=${OURS[$MODEL]} "${COMMON[@]}" --workdir="$OUT/ours_$MODEL"
done
python bench/peers/compare.py --runs="$OUT" --models="${MODELS// /,}" --out="$OUT/beauty.json"

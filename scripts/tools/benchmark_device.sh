#!/usr/bin/env bash
# The bundle on a GPU machine, end to end: does it run there, do its numbers equal the CPU's, and how fast is it.
#
# Usage, from the bundle root of a machine with a GPU and the bundle's requirements installed:
#
#     bash scripts/tools/benchmark_device.sh OUT_DIR [N_TRAIN_EPOCHS]
#
# 1. makes the embedded sample (if absent) and a small training cohort (8 phantoms, acquisition variety on);
# 2. runs inference.json on the sample on the GPU (AMP on, as the config does when torch sees CUDA) and on the CPU
#    (CUDA_VISIBLE_DEVICES empty; or give CPU_REFERENCE=<folder> of an earlier CPU run of the same sample), then
#    scripts.evaluation.compare_outputs: Dice of the two label maps, FF and volume differences per muscle;
# 3. scripts/tools/benchmark_inference.py on the GPU (stages, total per subject, peak GPU memory);
# 4. train.json for N_TRAIN_EPOCHS (default 6) on the cohort, then 1 epoch of multi_gpu_train.json under torchrun
#    with NCCL; seconds per iteration from ignite's epoch times.
# Everything is written under OUT_DIR (nothing in the bundle's models/ or eval/); a summary goes to stdout.
set -euo pipefail
out=${1:?usage: benchmark_device.sh OUT_DIR [N_TRAIN_EPOCHS]}
epochs=${2:-6}
py=${PYTHON:-python3}
mkdir -p "$out"
stamp() { date +%s.%N; }
since() { "$py" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(stamp)"; }

"$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
t=$(stamp)
"$py" -m scripts.phantom sample --out_dir sample_data > "$out/phantom_sample.log" 2>&1 &
"$py" -m scripts.phantom cohort "$out/train_cohort" --n 8 --seed 7 --n_validation 2 > "$out/phantom_cohort.log" 2>&1 &
wait
echo "phantoms (3 sample + 8 cohort, in parallel): $(since "$t") s"

t=$(stamp)
"$py" -m monai.bundle run --config_file configs/inference.json --output_dir "$out/eval_gpu" > "$out/infer_gpu.log" 2>&1
echo "inference, GPU, 3 sample subjects (one process, start-up included): $(since "$t") s"
cpu_run=${CPU_REFERENCE:-}
if [ -z "$cpu_run" ]; then
    cpu_run=$out/eval_cpu
    t=$(stamp)
    CUDA_VISIBLE_DEVICES="" "$py" -m monai.bundle run --config_file configs/inference.json --output_dir "$cpu_run" \
        > "$out/infer_cpu.log" 2>&1
    echo "inference, CPU ($(nproc) cores), 3 sample subjects: $(since "$t") s"
fi
"$py" -m scripts.evaluation.compare_outputs --run_a "$cpu_run" --run_b "$out/eval_gpu" --out_csv "$out/gpu_vs_cpu.csv"

"$py" scripts/tools/benchmark_inference.py --dataset_dir sample_data --n 3

common=(--dataset_dir "$out/train_cohort" --num_workers 8 --loader_workers 8)
t=$(stamp)
"$py" -m monai.bundle run --config_file configs/train.json "${common[@]}" --epochs "$epochs" --val_interval 3 \
    --ckpt_dir "$out/train_models" --output_dir "$out/train_eval" > "$out/train.log" 2>&1
echo "train.json, $epochs epochs of 6 subjects x 2 patches (96x96x48), caching and validation included: $(since "$t") s"
ls -l "$out/train_models/model.pt" || echo "no model.pt: no validation ran (N_TRAIN_EPOCHS < 3)"
t=$(stamp)
torchrun --standalone --nnodes=1 --nproc_per_node=1 -m monai.bundle run \
    --config_file "['configs/train.json','configs/multi_gpu_train.json']" "${common[@]}" --epochs 1 --val_interval 1 \
    --ckpt_dir "$out/train_models_ddp" --output_dir "$out/train_eval_ddp" > "$out/train_ddp.log" 2>&1
echo "multi_gpu_train.json under torchrun (NCCL, 1 process), 1 epoch: $(since "$t") s"
"$py" - "$out/train.log" <<'EOF'
import re
import sys

times = []
for line in open(sys.argv[1]):
    m = re.search(r"SupervisedTrainer - INFO - Epoch\[(\d+)\] Complete\. Time taken: (\d+):(\d+):([\d.]+)", line)
    if m:
        times.append(int(m[2]) * 3600 + int(m[3]) * 60 + float(m[4]))
its = 6  # 6 training subjects, one iteration each (a batch of 2 patches)
if times:
    later = sorted(times[1:]) or times
    print(f"training epochs (s): {', '.join(f'{x:.1f}' for x in times)}; median after the first "
          f"{later[len(later) // 2]:.1f} s = {later[len(later) // 2] / its:.3f} s per iteration of 2 patches")
EOF

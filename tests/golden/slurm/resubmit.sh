A0=$(sbatch --parsable --array=3,7-9%16 '/shared/radio archive/data/metadata/experiments/slurm/20260101T000000-ast/score.sbatch')
A1=$(sbatch --parsable --array=50%16 --export=ALL,DAMS_SHARD_OFFSET=100 '/shared/radio archive/data/metadata/experiments/slurm/20260101T000000-ast/score.sbatch')
sbatch --dependency=afterok:${A0%%;*}:${A1%%;*} --kill-on-invalid-dep=yes '/shared/radio archive/data/metadata/experiments/slurm/20260101T000000-ast/merge.sbatch'

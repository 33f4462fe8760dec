A0=$(sbatch --parsable --array=0-199%16 '/shared/radio archive/data/metadata/experiments/slurm/20260101T000000-ast/score.sbatch')
sbatch --dependency=afterok:${A0%%;*} --kill-on-invalid-dep=yes '/shared/radio archive/data/metadata/experiments/slurm/20260101T000000-ast/merge.sbatch'

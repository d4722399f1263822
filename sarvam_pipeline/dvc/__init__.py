"""Build a whole target matrix with DVC: one DVC stage per unique node of the stage graph.

``python -m sarvam_pipeline.dvc compile`` turns a targets config (``conf/targets/<name>.yaml``) into a
``dvc.yaml`` and a ``params.yaml``. Each generated stage runs ``python -m sarvam_pipeline.dvc run <stage>``.
That command rebuilds the stage's node from ``params.yaml`` and builds it with the same executor and
artifact store as ``python -m sarvam_pipeline``.
"""

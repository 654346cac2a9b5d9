"""Fine-tuning machinery of the registered methods ``setar-ft``, ``lora`` and ``locoop``.

* :mod:`.adapters` — trainable low-rank terms on weights (SeTAR+FT's minor components, LoRA);
* :mod:`.prompts` — LoCoOp / CoOp learnable prompt context;
* :mod:`.trainer` — the training loop (LoCoOp loss, SGD, cosine schedule, progress, per-step log);
* :mod:`.augment` — training transforms; :mod:`.presets` — published settings per backbone family;
* :mod:`.checkpoint` — trained tensors, merged weights, prompts files, exports;
* :mod:`.method` / :mod:`.weights` — the shared Method machinery (cache, Modification).
"""

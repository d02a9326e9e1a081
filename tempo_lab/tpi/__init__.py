"""Position-free attention beside RoPE: the TPI phase-integral byte-level LM of the last seed document.

Modules: ``layers`` (TPI attention, its variants, the naive reference, the RoPE baseline), ``model`` (the
byte-level LM and the named architectures), ``corpus`` (the bundled text and its split), ``train`` (the seeded
trainer and checkpoints), ``recall`` (the associative-recall probe), ``probes`` (gap and phase-shift probes),
``runs`` (the trained models of notebooks 08 and 10, in a verified results folder), ``report`` (notebook
08's tables and figures), ``convert`` (a RoPE char-LM as a GPT-NeoX transformers model, the same logits),
``lengths`` (notebook 10: bits per byte past the trained length under each context-extension method).
"""

"""Position-free attention beside RoPE: the TPI phase-integral byte-level LM of the last seed document.

Modules: ``layers`` (TPI attention, its variants, the naive reference, the RoPE baseline), ``model`` (the
byte-level LM and the named architectures), ``corpus`` (the bundled text and its split), ``train`` (the seeded
trainer and checkpoints), ``recall`` (the associative-recall probe), ``probes`` (gap and phase-shift probes),
``runs`` (the trained models of notebook 08, in a verified results folder), ``report`` (its tables and
figures).
"""

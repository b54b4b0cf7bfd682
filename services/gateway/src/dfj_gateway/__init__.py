"""gateway: the only HTTP ingress — verify, normalise, publish, answer fast."""

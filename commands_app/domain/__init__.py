"""The plain-Python kernel: message bases, aggregate base, registry and errors (no Django)."""

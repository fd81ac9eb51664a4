"""steper: step-wise knowledge distillation for multi-step retrieval-augmented reasoning (StepER)."""

__version__ = "0.1.0"

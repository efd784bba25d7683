"""Fine-tuning: training data, PEFT LoRA training and adapter export."""

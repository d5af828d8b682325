"""Generation: Transformers' `generate()`, where plain greedy search of BigBird-Pegasus takes its argmax through a
float16 copy of the output projection, with Transformers' tokens (`greedy`, `output_head`)."""

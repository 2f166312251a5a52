"""Logic shared by several hosts (model sizes, pooling, prompt helpers). Hosts never import each other."""

"""Text side of ALT: class-name lists, prompts, the entity corpus and cached CLIP text embeddings."""

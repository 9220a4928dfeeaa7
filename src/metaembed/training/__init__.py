"""Lightning training of MetaEmbed with the Matryoshka multi-vector loss."""

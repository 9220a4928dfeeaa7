"""`metaembed demo`: the model core end to end on a few generated inputs.

Builds the tiny backbone, encodes generated text, image and text+image queries and candidates
once at full size, and prints MaxSim scores at every budget of the loss groups by slicing.
The model is untrained, so the point is the mechanics (shapes, budgets, costs), not the ranks.
"""

from __future__ import annotations

import argparse

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 200, 40)}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (sections backbone, model, loss)")


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from metaembed.backbones import BackboneParams, load_backbone
    from metaembed.config import load_params, section
    from metaembed.costs import budget_cost
    from metaembed.losses import validate_groups
    from metaembed.model import MetaEmbed, ModelParams
    from metaembed.scoring import maxsim

    console = Console()
    params = load_params(args.params)
    backbone_params = section(params, "backbone", BackboneParams, args.params)
    model_params = section(params, "model", ModelParams, args.params)
    groups = validate_groups(
        [tuple(group) for group in params.get("loss", {}).get("groups", [])],
        model_params.num_query_meta,
        model_params.num_candidate_meta,
    )
    torch.manual_seed(0)
    with console.status("building the backbone and MetaEmbed"):
        model = MetaEmbed(load_backbone(backbone_params), model_params, backbone_params).eval()
    query_texts, query_images, candidate_texts, candidate_images = _inputs()
    with torch.inference_mode():
        queries, query_mask = model.encode_queries(query_texts, query_images)
        candidates, candidate_mask = model.encode_candidates(candidate_texts, candidate_images)
    console.print(f"queries {tuple(queries.shape)}, candidates {tuple(candidates.shape)} (B, R, D)")
    for r_q, r_c, _ in groups:
        scores = maxsim(queries, candidates, budget=(r_q, r_c), q_mask=query_mask, c_mask=candidate_mask)
        cost = budget_cost((r_q, r_c), model.dim, "float32")
        console.print(_table((r_q, r_c), scores, cost, query_texts, candidate_texts))
    return 0


def _inputs():
    """Two one-object scenes plus texts: text, image and text+image on both sides."""
    red, blue = _scene("red", "circle"), _scene("blue", "square")
    query_texts = ["a red circle", None, "which shape is this?"]
    query_images = [None, blue, red]
    candidate_texts = ["a red circle", "a blue square", None, "a green triangle"]
    candidate_images = [red, None, blue, _scene("green", "triangle")]
    return query_texts, query_images, candidate_texts, candidate_images


def _scene(colour: str, shape: str, size: int = 112):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    box = (size // 4, size // 4, 3 * size // 4, 3 * size // 4)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=fill)
    return image


def _table(budget, scores, cost, query_texts, candidate_texts):
    from rich.table import Table

    title = (
        f"budget (r_q, r_c) = {budget}: {cost.flops_per_pair:,} FLOPs per pair, "
        f"{cost.index_bytes_per_candidate:,} index bytes per candidate"
    )
    table = Table(title=title)
    table.add_column("query")
    for index, text in enumerate(candidate_texts):
        table.add_column(f"c{index}: {text or '(image)'}", justify="right")
    for row, text in zip(scores.tolist(), query_texts):
        best = max(range(len(row)), key=row.__getitem__)
        cells = [f"[bold]{value:.3f}[/bold]" if index == best else f"{value:.3f}" for index, value in enumerate(row)]
        table.add_row(text or "(image)", *cells)
    return table

"""Instruction and query wording, in the style of the real MMEB and ViDoRe texts.

MMEB puts the task instruction into the text fields and marks the image with `<|image_1|>`;
candidates that are images carry their own short instruction. ViDoRe v2 has queries in several
languages (a `language` column); the page sets here use English and French.
"""

from __future__ import annotations

IMAGE_TOKEN = "<|image_1|>"

CLASSIFY = f"{IMAGE_TOKEN}\nRepresent the given image for classification"
VQA = f"{IMAGE_TOKEN}\nRepresent the given image with the following question: What is at the {{position}}?"
T2I = "Find an image that matches the given caption: {caption}"
I2T = f"{IMAGE_TOKEN}\nFind an image caption describing the given image."
IT2I = f"{IMAGE_TOKEN}\nGiven an image, find a similar image with the following modification: {{change}}"
GROUND = f'{IMAGE_TOKEN}\nSelect the portion of the image that isolates the object labeled as "{{label}}"'
IMAGE_CANDIDATE = f"{IMAGE_TOKEN}\nRepresent the given image."
CROP_CANDIDATE = f"{IMAGE_TOKEN}\nRepresent the given cropped image of the object"

CHANGES = {
    "colour": "make the {target} {value}",
    "shape": "turn the {target} into a {value}",
    "size": "make the {target} {value}",
    "position": "move the {target} to the {value}",
    "word": "change the word on the {target} to {value}",
}

PAGE_QUERIES = {
    "en": {
        "figure": "Which page of the {doc} report shows a {colour} {shape}?",
        "word": "Which page of the {doc} report has a figure captioned {word}?",
        "document": "Find the pages of the {doc} report",
    },
    "fr": {
        "figure": "Quelle page du rapport {doc} montre un {shape} {colour} ?",
        "word": "Quelle page du rapport {doc} a une figure avec la légende {word} ?",
        "document": "Trouver les pages du rapport {doc}",
    },
}
FRENCH = {
    "red": "rouge", "green": "vert", "blue": "bleu", "yellow": "jaune", "orange": "orange",
    "purple": "violet", "cyan": "cyan", "white": "blanc", "pink": "rose", "brown": "marron",
    "circle": "cercle", "square": "carré", "triangle": "triangle", "diamond": "losange", "cross": "croix",
    "ring": "anneau", "bar": "barre",
}


def template_words() -> set[str]:
    texts = [CLASSIFY, VQA, T2I, I2T, IT2I, GROUND, IMAGE_CANDIDATE, CROP_CANDIDATE, *CHANGES.values(),
             *PAGE_QUERIES["en"].values()]
    words = set()
    for text in texts:
        for word in text.replace(IMAGE_TOKEN, " ").replace("\n", " ").split():
            word = word.strip('?:".,').lower()
            if word.isalpha():
                words.add(word)
    return words

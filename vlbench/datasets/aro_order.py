"""ARO's COCO-Order / Flickr30k-Order options: a caption and four word-order perturbations.

Follows the official ARO code (mertyg/vision-language-models-are-bows, ``dataset_zoo``): for every
caption, in file order, the options are ``[original, shuffle nouns and adjectives, shuffle all but
nouns and adjectives, shuffle within trigrams, shuffle trigrams]``; each perturbation is applied to
the raw caption and every option is then normalised with ``pre_caption`` (max 30 words). Nouns
and adjectives are spaCy ``en_core_web_sm`` fine-grained tags; trigrams are chunks of
``nltk.word_tokenize`` tokens. The noun/adjective shuffles draw from a numpy RandomState and the
trigram shuffles from a Python Random, both seeded with the task seed (ARO's default is 1), in
the same order as the official code, so the same seed and tagger versions give the same options.
"""

from __future__ import annotations

import random
import re
from typing import Protocol, Sequence

import numpy as np

from vlbench.errors import VLBenchError
from vlbench.registry import Registry

NOUN_TAGS = ("NN", "NNS", "NNP", "NNPS")
ADJECTIVE_TAGS = ("JJ", "JJR", "JJS")
MAX_WORDS = 30
INSTALL_HINT = (
    'install the part-of-speech tagger ARO uses: pip install "vlbench[aro]" && '
    "python -m spacy download en_core_web_sm && python -m nltk.downloader punkt punkt_tab "
    "(or reuse saved options with --set <task>:files.order_options=<file>)"
)


def pre_caption(caption: str, max_words: int = MAX_WORDS) -> str:
    """ARO/BLIP caption normalisation."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption)
    caption = caption.rstrip("\n").strip(" ")
    words = caption.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else caption


class Tagger(Protocol):
    """What the perturbations need from NLP tools."""

    def tagged_tokens(self, text: str) -> list[tuple[str, str]]:
        """(token text, fine-grained Penn Treebank tag) for each token (spaCy in ARO)."""

    def words(self, text: str) -> list[str]:
        """Word tokens for the trigram shuffles (nltk.word_tokenize in ARO)."""

    def describe(self) -> dict[str, str]: ...


TAGGERS: Registry = Registry("part-of-speech tagger", entry_point_group="vlbench.taggers")


@TAGGERS.register("spacy")
class SpacyNltkTagger:
    """spaCy ``en_core_web_sm`` tags and ``nltk.word_tokenize`` tokens, as ARO uses."""

    def __init__(self, model: str = "en_core_web_sm"):
        try:
            import nltk
            import spacy
        except ImportError as exc:
            raise VLBenchError(f"ARO order tasks need spaCy and nltk ({exc.name} is missing): {INSTALL_HINT}") from exc
        try:
            self.nlp = spacy.load(model)
        except OSError as exc:
            raise VLBenchError(f"spaCy model '{model}' is not installed: {INSTALL_HINT}") from exc
        try:
            nltk.word_tokenize("a test.")
        except LookupError as exc:
            raise VLBenchError(f"nltk's punkt tokenizer data is not installed: {INSTALL_HINT}") from exc
        self._word_tokenize = nltk.word_tokenize
        self.versions = {"spacy": spacy.__version__, "spacy_model": f"{model} {self.nlp.meta.get('version')}", "nltk": nltk.__version__}

    def tagged_tokens(self, text: str) -> list[tuple[str, str]]:
        return [(token.text, token.tag_) for token in self.nlp(text)]

    def words(self, text: str) -> list[str]:
        return self._word_tokenize(text)

    def describe(self) -> dict[str, str]:
        return self.versions


def _trigrams(tokens: Sequence[str]) -> list[list[str]]:
    return [list(tokens[i : i + 3]) for i in range(0, len(tokens), 3)]


class OrderPerturber:
    """The four ARO perturbations with their own seeded random streams."""

    def __init__(self, tagger: Tagger, seed: int):
        self.tagger = tagger
        self.np_random = np.random.RandomState(seed)
        self.py_random = random.Random(seed)

    def shuffle_nouns_and_adjectives(self, caption: str) -> str:
        tagged = self.tagger.tagged_tokens(caption)
        text = np.array([token for token, _ in tagged])
        nouns = [i for i, (_, tag) in enumerate(tagged) if tag in NOUN_TAGS]
        adjectives = [i for i, (_, tag) in enumerate(tagged) if tag in ADJECTIVE_TAGS]
        text[nouns] = self.np_random.permutation(text[nouns])
        text[adjectives] = self.np_random.permutation(text[adjectives])
        return " ".join(text)

    def shuffle_all_but_nouns_and_adjectives(self, caption: str) -> str:
        tagged = self.tagger.tagged_tokens(caption)
        text = np.array([token for token, _ in tagged])
        others = np.array([tag not in NOUN_TAGS + ADJECTIVE_TAGS for _, tag in tagged], dtype=bool)
        text[others] = self.np_random.permutation(text[others])
        return " ".join(text)

    def shuffle_within_trigrams(self, caption: str) -> str:
        trigrams = _trigrams(self.tagger.words(caption))
        for trigram in trigrams:
            self.py_random.shuffle(trigram)
        return " ".join(" ".join(t) for t in trigrams)

    def shuffle_trigrams(self, caption: str) -> str:
        trigrams = _trigrams(self.tagger.words(caption))
        self.py_random.shuffle(trigrams)
        return " ".join(" ".join(t) for t in trigrams)

    def options(self, caption: str) -> list[str]:
        """[original, 4 perturbations], each normalised; index 0 is the original."""
        perturbations = (
            self.shuffle_nouns_and_adjectives,
            self.shuffle_all_but_nouns_and_adjectives,
            self.shuffle_within_trigrams,
            self.shuffle_trigrams,
        )
        return [pre_caption(caption)] + [pre_caption(perturb(caption)) for perturb in perturbations]

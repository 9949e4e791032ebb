"""Normalised text for sorting and prefix search (people's and classes' names).

:func:`fold` ignores case, accents and repeated spaces, so "Émile  Zola",
"emile zola" and "EMILE ZOLA" all become ``emile zola``; sort and search keys
are built from it and stored, so a prefix search is a key condition on an
index (``begins_with``), never a scan.
"""
import unicodedata

#: Separates the folded text from the item's id in a sort key ("\x1f" sorts
#: before every printable character, so "ann" comes before "anna").
SEPARATOR = "\x1f"


def fold(text):
    decomposed = unicodedata.normalize("NFKD", text or "").casefold()
    base = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(base.split())


def sort_key(text, unique_id):
    """A unique sort key: the folded text, then the id."""
    return f"{fold(text)}{SEPARATOR}{unique_id}"

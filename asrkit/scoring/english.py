"""A compact English normaliser following the rules of Whisper's `EnglishTextNormalizer`.

Applied to both sides, it removes differences that are not recognition errors (case,
punctuation, fillers, contractions, spelled vs written numbers, British vs American spelling).
It changes the number of reference words, so its WER is never comparable with a
`librispeech`-normalised WER.

Steps, in Whisper's order:
1. lower-case; drop `[...]`, `<...>` and `(...)`; drop fillers (hmm, mm, mhm, mmm, uh, um);
2. expand contractions and titles (won't -> will not, mr -> mister, 's -> is, n't -> not, ...);
3. remove commas between digits and periods not before a digit; fold diacritics and turn
   every other symbol and punctuation mark into a space, keeping `. % $ ¢ € £`;
4. spelled numbers -> digits (below);
5. British -> American spelling for a short list of frequent words (Whisper ships ~1,700);
6. attach currency and percent signs to their numbers, drop the ones left alone.

Numbers covered: cardinals up to the trillions ("two hundred and five" -> 205, "twenty five"
-> 25), digit strings and years said in parts ("nineteen eighty four" -> 1984, "one oh one" ->
101, "double five" -> 55), ordinals and plurals ("twenty first" -> 21st, "sixties" -> 60s),
decimals with "point", "minus"/"plus", "<n> percent"/"per cent" -> n%, and "<n> dollars/
pounds/euros/cents" -> $n/£n/€n/¢n with "<n> dollars and <m> cents" -> $n.mm. Like Whisper, a
lone "one"/"ones" stays a word. Not covered: "and a half", "half a million", fractions.
Deviation: "o"/"oh" mean zero only next to another number word (Whisper turns every "oh" into 0).

>>> normalize_english("IT'S TWENTY FIVE DOLLARS MISTER SMITH'S COLOUR")
'it is $25 mister smith is color'
>>> normalize_english("Uh, I think Mr. Smith paid $25.50 (roughly) for 2 colours!")
'i think mister smith paid $25.50 for 2 colors'
"""

from __future__ import annotations

import re
import unicodedata

_FILLERS = re.compile(r"\b(hmm|mm|mhm|mmm|uh|um)\b")
_BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]|\(([^)]+?)\)")

# Order matters: whole-word forms first, then the generic suffix rules.
_CONTRACTIONS: list[tuple[str, str]] = [
    (r"\bwon't\b", "will not"),
    (r"\bcan't\b", "can not"),
    (r"\blet's\b", "let us"),
    (r"\bain't\b", "aint"),
    (r"\by'all\b", "you all"),
    (r"\bwanna\b", "want to"),
    (r"\bgotta\b", "got to"),
    (r"\bgonna\b", "going to"),
    (r"\bi'ma\b", "i am going to"),
    (r"\bimma\b", "i am going to"),
    (r"\bwoulda\b", "would have"),
    (r"\bcoulda\b", "could have"),
    (r"\bshoulda\b", "should have"),
    (r"\bma'am\b", "madam"),
    *[
        (rf"\b{short}\b", f"{long} ")
        for short, long in {
            "mr": "mister",
            "mrs": "missus",
            "st": "saint",
            "dr": "doctor",
            "prof": "professor",
            "capt": "captain",
            "gov": "governor",
            "ald": "alderman",
            "gen": "general",
            "sen": "senator",
            "rep": "representative",
            "pres": "president",
            "rev": "reverend",
            "hon": "honorable",
            "asst": "assistant",
            "assoc": "associate",
            "lt": "lieutenant",
            "col": "colonel",
            "jr": "junior",
            "sr": "senior",
            "esq": "esquire",
        }.items()
    ],
    (r"'d been\b", " had been"),
    (r"'s been\b", " has been"),
    (r"'d gone\b", " had gone"),
    (r"'s gone\b", " has gone"),
    (r"'d done\b", " had done"),
    (r"'s got\b", " has got"),
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'s\b", " is"),
    (r"'d\b", " would"),
    (r"'ll\b", " will"),
    (r"'t\b", " not"),
    (r"'ve\b", " have"),
    (r"'m\b", " am"),
]
_CONTRACTION_RES = [(re.compile(pattern), repl) for pattern, repl in _CONTRACTIONS]

# Letters that NFKD does not decompose.
_EXTRA_FOLDS = {"œ": "oe", "æ": "ae", "ø": "o", "ß": "ss", "ł": "l", "đ": "d", "ð": "d", "þ": "th"}

_SPELLINGS = {
    british: american
    for american, forms in {
        "color": "colour colours", "favor": "favour favours", "honor": "honour honours",
        "labor": "labour", "neighbor": "neighbour neighbours", "behavior": "behaviour",
        "humor": "humour", "harbor": "harbour", "rumor": "rumour", "vapor": "vapour",
        "center": "centre centres", "theater": "theatre", "meter": "metre metres",
        "fiber": "fibre", "gray": "grey", "traveled": "travelled", "traveling": "travelling",
        "canceled": "cancelled", "realize": "realise", "realized": "realised",
        "organize": "organise", "organized": "organised", "recognize": "recognise",
        "recognized": "recognised", "apologize": "apologise", "program": "programme",
        "defense": "defence", "offense": "offence", "license": "licence",
        "catalog": "catalogue", "analyze": "analyse", "jewelry": "jewellery", "mold": "mould",
        "plow": "plough", "skeptical": "sceptical", "check": "cheque", "tire": "tyre",
        "pajamas": "pyjamas", "aluminum": "aluminium", "mustache": "moustache",
    }.items()
    for british in forms.split()
}  # fmt: skip
# Plural forms map to the plural American form.
_SPELLINGS.update({"colours": "colors", "favours": "favors", "honours": "honors"})
_SPELLINGS.update({"neighbours": "neighbors", "centres": "centers", "metres": "meters"})

_ONES = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"]
_TEENS += ["seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_BIG = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}

# word -> (value, kind); kinds: "one" 1-9, "teen" 10-19, "ten" 20-90, "hundred", "big", "zero".
_CARDINALS: dict[str, tuple[int, str]] = {
    **{w: (i + 1, "one") for i, w in enumerate(_ONES)},
    **{w: (i + 10, "teen") for i, w in enumerate(_TEENS)},
    **{w: (20 + 10 * i, "ten") for i, w in enumerate(_TENS)},
    "hundred": (100, "hundred"),
    **{w: (v, "big") for w, v in _BIG.items()},
    "zero": (0, "zero"),
}
_ORDINAL_IRREGULAR = {"first": "one", "second": "two", "third": "three", "fifth": "five"}
_ORDINAL_IRREGULAR.update({"eighth": "eight", "ninth": "nine", "twelfth": "twelve"})


def _suffixed(word: str) -> tuple[str, str] | None:
    """'twenty' forms with a suffix: ('sixties' -> ('sixty', 's')), ('fourth' -> ('four', 'th'))."""
    if word in _ORDINAL_IRREGULAR:
        base = _ORDINAL_IRREGULAR[word]
        return base, {"first": "st", "second": "nd", "third": "rd"}.get(word, "th")
    for ending, repl, suffix in (("ieths", "y", "ths"), ("ieth", "y", "th"), ("ies", "y", "s")):
        if word.endswith(ending) and word[: -len(ending)] + repl in _CARDINALS:
            return word[: -len(ending)] + repl, suffix
    for ending, suffix in (("ths", "ths"), ("th", "th"), ("es", "s"), ("s", "s")):
        if word.endswith(ending) and word[: -len(ending)] in _CARDINALS:
            return word[: -len(ending)], suffix
    return None


class _Number:
    """One spoken number being read word by word: arithmetic while the words form a cardinal
    ("two hundred five"), digit concatenation when they do not ("nineteen eighty four")."""

    def __init__(self) -> None:
        self.digits = ""  # finished chunks, concatenated ("19" after "nineteen eighty")
        self.total = 0  # the current chunk: sum of completed thousands groups
        self.group = 0  # the current chunk's part below the last big multiplier
        self.last = ""  # kind of the last word of the current chunk ("" = no chunk)
        self.last_big = 0

    def _extends(self, value: int, kind: str) -> bool:
        if not self.last:
            return True
        small = self.group % 100
        if kind == "one":
            return self.last in ("ten", "hundred", "big") and small % 10 == 0 and small < 100
        if kind in ("teen", "ten"):
            return self.last in ("hundred", "big") and small == 0
        if kind == "hundred":
            return self.last in ("one", "teen", "ten") and 0 < self.group < 100
        if kind == "big":
            return (
                self.last != "big"
                and self.group > 0
                and (not self.last_big or value < self.last_big)
            )
        return False

    def _close_chunk(self) -> None:
        if self.last:
            self.digits += str(self.total + self.group)
        self.total, self.group, self.last, self.last_big = 0, 0, "", 0

    def add(self, value: int, kind: str) -> None:
        if kind == "zero" or not self._extends(value, kind):
            self._close_chunk()
        if kind == "zero":
            self.digits += "0"
            return
        if kind == "hundred":
            self.group = (self.group or 1) * 100
        elif kind == "big":
            self.total += (self.group or 1) * value
            self.group, self.last_big = 0, value
        else:
            self.group += value
        self.last = kind

    def text(self) -> str:
        self._close_chunk()
        return self.digits


_NUMBER_WORD = re.compile(r"^\d+(\.\d+)?$")


def _is_number_word(word: str | None) -> bool:
    return word is not None and (word in _CARDINALS or _suffixed(word) is not None)


def _read_number(words: list[str], i: int) -> tuple[str, int]:
    """Read the spoken number starting at words[i]; returns (digits with suffix, next index)."""
    number = _Number()
    suffix = ""
    while i < len(words):
        word, nxt = words[i], words[i + 1] if i + 1 < len(words) else None
        prev_kind = number.last
        if word in _CARDINALS:
            number.add(*_CARDINALS[word])
        elif word in ("o", "oh"):
            number.add(0, "zero")
        elif word in ("double", "triple") and nxt in [*_ONES, "zero", "o", "oh"]:
            digit = str(_ONES.index(nxt) + 1) if nxt in _ONES else "0"
            number._close_chunk()
            number.digits += digit * (2 if word == "double" else 3)
            i += 1
        elif word == "and" and prev_kind in ("hundred", "big") and nxt in _CARDINALS:
            pass  # "two hundred and five": the "and" belongs to the number
        elif word == "point" and (nxt in _ONES or nxt in ("zero", "o", "oh")):
            integer = number.text() or "0"
            decimals = ""
            while i + 1 < len(words) and words[i + 1] in [*_ONES, "zero", "o", "oh"]:
                i += 1
                decimals += str(_ONES.index(words[i]) + 1) if words[i] in _ONES else "0"
            return f"{integer}.{decimals}", i + 1
        elif (parts := _suffixed(word)) is not None:
            number.add(*_CARDINALS[parts[0]])
            suffix = parts[1]
            i += 1
            break
        else:
            break
        i += 1
    return number.text() + suffix, i


_CURRENCY = {"dollar": "$", "dollars": "$", "pound": "£", "pounds": "£", "euro": "€"}
_CURRENCY.update({"euros": "€", "cent": "¢", "cents": "¢"})
_SIGNS = {"minus": "-", "negative": "-", "plus": "+", "positive": "+"}


def _starts_number(words: list[str], i: int) -> bool:
    word, nxt = words[i], words[i + 1] if i + 1 < len(words) else None
    if word in ("o", "oh"):  # "oh" is a zero only next to another number word
        prev = words[i - 1] if i > 0 else None
        return _is_number_word(nxt) or _is_number_word(prev)
    if word in ("double", "triple"):
        return nxt in [*_ONES, "zero", "o", "oh"]
    return _is_number_word(word)


def standardize_numbers(text: str) -> str:
    """Spelled-out numbers -> digits, with currency, percent and sign words attached."""
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if word in _SIGNS and nxt is not None and (_is_number_word(nxt) or _NUMBER_WORD.match(nxt)):
            out.append(_SIGNS[word])
            i += 1
            continue
        if not _starts_number(words, i) and not _NUMBER_WORD.match(word):
            out.append(word)
            i += 1
            continue
        if _NUMBER_WORD.match(word):
            digits, i = word, i + 1
        else:
            digits, i = _read_number(words, i)
        nxt = words[i] if i < len(words) else None
        after = words[i + 1] if i + 1 < len(words) else None
        if nxt in ("percent",) or (nxt == "per" and after == "cent"):
            digits, i = digits + "%", i + (1 if nxt == "percent" else 2)
        elif nxt in _CURRENCY:
            digits, i = _CURRENCY[nxt] + digits, i + 1
        if out and out[-1] in ("-", "+"):
            digits = out.pop() + digits
        out.append(digits)
    text = " ".join(out)
    # "$2 and ¢7" -> "$2.07"; a lone "one(s)" stays a word, as in Whisper.
    text = re.sub(
        r"([€£$])(\d+) (?:and )?¢(\d{1,2})\b", lambda m: f"{m[1]}{m[2]}.{int(m[3]):02d}", text
    )
    return re.sub(r"(?<![\d.$£€¢+-])\b1(s?)\b(?![.\d%])", r"one\1", text)


def remove_symbols(text: str, keep: str = ".%$¢€£") -> str:
    """Fold diacritics; every other mark, symbol or punctuation character becomes a space."""
    out = []
    for char in unicodedata.normalize("NFKD", text):
        category = unicodedata.category(char)
        if char in keep:
            out.append(char)
        elif char in _EXTRA_FOLDS:
            out.append(_EXTRA_FOLDS[char])
        elif category == "Mn":
            continue
        elif category[0] in "MSP":
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def normalize_english(text: str) -> str:
    """Normalise English text the way Whisper's `EnglishTextNormalizer` does (see module doc)."""
    text = text.lower()
    text = re.sub(r"[’‘`´ʼ]", "'", text)
    text = _BRACKETED.sub("", text)
    text = _FILLERS.sub("", text)
    text = re.sub(r"\s+'", "'", text)  # "don 't" -> "don't"
    for pattern, repl in _CONTRACTION_RES:
        text = pattern.sub(repl, text)
    text = re.sub(r"(\d),(\d)", r"\1\2", text)
    text = re.sub(r"\.([^0-9]|$)", r" \1", text)
    text = remove_symbols(text)
    text = re.sub(r"([a-z])(\d)", r"\1 \2", text)
    text = re.sub(r"(\d)([a-z])", r"\1 \2", text)
    text = re.sub(r"(\d)\s+(st|nd|rd|th|s)\b", r"\1\2", text)
    text = standardize_numbers(text)
    text = " ".join(_SPELLINGS.get(word, word) for word in text.split())
    text = re.sub(r"([$¢€£])\s+(\d)", r"\1\2", text)
    text = re.sub(r"(\d)\s+%", r"\1%", text)
    text = re.sub(r"[.$¢€£]([^0-9])", r" \1", text + " ")
    text = re.sub(r"([^0-9])%", r"\1 ", text)
    return re.sub(r"\s+", " ", text).strip()

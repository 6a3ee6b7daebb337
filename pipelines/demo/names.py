"""The sample contacts' vocabulary (pipelines/demo/contacts.py): first and last names, with
the ASCII slug their e-mail addresses are built from, rare ones that exercise CSV quoting,
and the countries and time zones people live in, by share."""

from __future__ import annotations

import numpy as np
import polars as pl

# (display, ascii slug used to build e-mail addresses)
FIRST_NAMES = (
    ("James", "james"), ("Mary", "mary"), ("John", "john"), ("Patricia", "patricia"),
    ("Robert", "robert"), ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"),
    ("David", "david"), ("Sarah", "sarah"), ("Emma", "emma"), ("Oliver", "oliver"),
    ("Sophie", "sophie"), ("Lucas", "lucas"), ("Hannah", "hannah"), ("Liam", "liam"),
    ("Olivia", "olivia"), ("Noah", "noah"), ("Mia", "mia"), ("José", "jose"), ("María", "maria"),
    ("Zoë", "zoe"), ("Łukasz", "lukasz"), ("Søren", "soren"), ("Björn", "bjorn"),
    ("Chloé", "chloe"), ("François", "francois"), ("Jürgen", "jurgen"), ("Ngọc", "ngoc"),
    ("Minh", "minh"), ("李", "li"), ("芳", "fang"), ("Yuki", "yuki"), ("Haruto", "haruto"),
    ("さくら", "sakura"), ("Aoife", "aoife"), ("Siobhán", "siobhan"), ("Priya", "priya"),
    ("Aarav", "aarav"), ("João", "joao"), ("Ana", "ana"), ("Lars", "lars"), ("Ingrid", "ingrid"),
    ("Zofia", "zofia"), ("Małgorzata", "malgorzata"), ("Anaïs", "anais"), ("Renée", "renee"),
    ("Mohammed", "mohammed"), ("Fatima", "fatima"), ("Kenji", "kenji"), ("Matteo", "matteo"),
    ("Giulia", "giulia"), ("Daan", "daan"), ("Sanne", "sanne"), ("Lucía", "lucia"),
)  # fmt: skip
RARE_FIRST_NAMES = (
    ('Robert "Bob"', "bob"), ('Elizabeth "Liz"', "liz"), ("Mary, Kate", "marykate"),
    (" Tom ", "tom"), ("J.R.", "jr"),
)  # fmt: skip
LAST_NAMES = (
    ("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
    ("Jones", "jones"), ("Miller", "miller"), ("Davis", "davis"), ("Müller", "muller"),
    ("Schmidt", "schmidt"), ("Schröder", "schroder"), ("O'Brien", "obrien"),
    ("O'Connor", "oconnor"), ("Nguyễn", "nguyen"), ("Trần", "tran"), ("Kowalski", "kowalski"),
    ("Wiśniewska", "wisniewska"), ("Søndergaard", "sondergaard"), ("Jørgensen", "jorgensen"),
    ("Andersson", "andersson"), ("Öberg", "oberg"), ("García", "garcia"),
    ("Martínez", "martinez"), ("Pérez", "perez"), ("Dubois", "dubois"), ("Lefèvre", "lefevre"),
    ("Moreau", "moreau"), ("van der Berg", "vanderberg"), ("de Vries", "devries"),
    ("Janssen", "janssen"), ("Rossi", "rossi"), ("Bianchi", "bianchi"), ("Tanaka", "tanaka"),
    ("Suzuki", "suzuki"), ("佐藤", "sato"), ("李", "li"), ("王", "wang"), ("张", "zhang"),
    ("Patel", "patel"), ("Singh", "singh"), ("Silva", "silva"), ("Gonçalves", "goncalves"),
    ("Murphy", "murphy"), ("Kelly", "kelly"), ("Taylor", "taylor"), ("Wilson", "wilson"),
    ("Lee", "lee"), ("Kim", "kim"), ("Cohen", "cohen"), ("Al-Sayed", "alsayed"),
    ("Smith-Jones", "smithjones"),
)  # fmt: skip
RARE_LAST_NAMES = (
    ("Smith, Jr.", "smith"), ("Brown, III", "brown"), ('O"Neil', "oneil"), ("Doe ", "doe"),
)  # fmt: skip
# (country, IANA timezone, share of contacts)
PLACES = (
    ("US", "America/New_York", 12), ("US", "America/Chicago", 7), ("US", "America/Denver", 3),
    ("US", "America/Los_Angeles", 8), ("GB", "Europe/London", 10), ("DE", "Europe/Berlin", 9),
    ("FR", "Europe/Paris", 7), ("ES", "Europe/Madrid", 5), ("NL", "Europe/Amsterdam", 4),
    ("SE", "Europe/Stockholm", 3), ("DK", "Europe/Copenhagen", 2), ("PL", "Europe/Warsaw", 3),
    ("IT", "Europe/Rome", 4), ("IE", "Europe/Dublin", 2), ("JP", "Asia/Tokyo", 5),
    ("AU", "Australia/Sydney", 3), ("AU", "Australia/Perth", 1), ("BR", "America/Sao_Paulo", 3),
    ("CA", "America/Toronto", 3), ("CA", "America/Vancouver", 1),
    ("MX", "America/Mexico_City", 2), ("IN", "Asia/Kolkata", 2), ("VN", "Asia/Ho_Chi_Minh", 1),
    ("CN", "Asia/Shanghai", 1), ("NZ", "Pacific/Auckland", 1),
)  # fmt: skip
DOMAINS = ("example.com", "example.org", "example.net")


class Pool:
    """A weighted list of (display, slug) names; rare entries exercise CSV quoting."""

    def __init__(self, common: tuple, rare: tuple, rare_share: float) -> None:
        entries = common + rare
        self.display = pl.Series([e[0] for e in entries])
        self.slug = pl.Series([e[1] for e in entries])
        common_p = [(1 - rare_share) / len(common)] * len(common)
        self.p = np.array(common_p + [rare_share / len(rare)] * len(rare))

    def draw(self, rng: np.random.Generator, k: int) -> np.ndarray:
        return rng.choice(len(self.p), size=k, p=self.p).astype(np.int16)


FIRST = Pool(FIRST_NAMES, RARE_FIRST_NAMES, 0.012)
LAST = Pool(LAST_NAMES, RARE_LAST_NAMES, 0.012)
PLACE_P = np.array([p[2] for p in PLACES], dtype=float) / sum(p[2] for p in PLACES)


COUNTRIES = pl.Series([p[0] for p in PLACES])
TIMEZONES = pl.Series([p[1] for p in PLACES])

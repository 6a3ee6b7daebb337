"""The sample shop's catalogue (pipelines/demo/order_lines.py): each of the world's SKUs
(SKU-00001 .. SKU-02000, the codes web events browse) with a category, a product name and,
for some, a product bought with it (a bundle within or across categories).

Drawn from the order lines' own random generator, never the landing's: the other extracts
stay the same bytes for a seed whether or not lines are written."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.demo.world import N_SKUS

# A dozen categories, each with the nouns its product names are made of; their sizes differ.
CATEGORIES = {
    "Women's Clothing": ("Linen Shirt", "Wrap Dress", "Cardigan", "Trench Coat", "Silk Scarf"),
    "Men's Clothing": ("Oxford Shirt", "Chinos", "Wool Sweater", "Rain Jacket", "Polo"),
    "Shoes": ("Running Shoes", "Leather Boots", "Sneakers", "Sandals", "Loafers"),
    "Kids": ("Onesie", "Rain Boots", "Backpack", "Pyjamas", "Puzzle"),
    "Accessories": ("Belt", "Wallet", "Sunglasses", "Beanie", "Tote Bag"),
    "Home & Kitchen": ("Café Mug", "Chef's Knife", "Cutting Board", "Teapot", "Dinner Plate"),
    "Bedding & Bath": ("Duvet Cover", "Pillow", "Bath Towel", "Throw Blanket", "Sheet Set"),
    "Outdoor": ("Tent", "Sleeping Bag", "Headlamp", "Water Bottle", "Camp Stove"),
    "Sports": ("Yoga Mat", "Dumbbells", "Tennis Racket", "Cycling Gloves", "Gym Bag"),
    "Beauty": ("Face Cream", "Shampoo", "Lip Balm", "Perfume", "Soap Bar"),
    "Books & Stationery": ("Notebook", "Fountain Pen", "Cookbook", "Planner", "Novel"),
    "Garden": ("Watering Can", "Plant Pot", "Pruning Shears", "Seed Kit", "Garden Gloves"),
}
CATEGORY_SHARES = np.array([14, 12, 11, 7, 9, 12, 6, 8, 7, 6, 4, 4], dtype=float)
# Products bought with another from these categories (besides their own).
COMPLEMENTS = {
    "Shoes": "Sports", "Sports": "Shoes", "Outdoor": "Accessories", "Kids": "Books & Stationery",
    "Home & Kitchen": "Bedding & Bath", "Bedding & Bath": "Home & Kitchen",
    "Women's Clothing": "Accessories", "Men's Clothing": "Accessories", "Beauty": "Bedding & Bath",
    "Garden": "Outdoor", "Accessories": "Women's Clothing", "Books & Stationery": "Kids",
}  # fmt: skip
ADJECTIVES = pl.Series(
    ("Classic", "Organic", "Everyday", "Premium", "Compact", "Vintage", "Recycled", "Nordic",
     "Travel", "Deluxe", "Soft", "Bold", "Essential", "Heritage", "Urban", "Coastal")
)  # fmt: skip
COMPANION_SHARE = 0.3


@dataclass(frozen=True)
class Catalogue:
    category: np.ndarray  # per SKU index: its category's index in CATEGORIES
    companion: np.ndarray  # per SKU index: a SKU bought with it, or -1
    product_name: pl.Series
    category_name: pl.Series


def build_catalogue(rng: np.random.Generator) -> Catalogue:
    names = list(CATEGORIES)
    category = rng.choice(len(names), size=N_SKUS, p=CATEGORY_SHARES / CATEGORY_SHARES.sum())
    per_category = len(next(iter(CATEGORIES.values())))
    nouns = pl.Series([noun for group in CATEGORIES.values() for noun in group])
    noun = category * per_category + rng.integers(0, per_category, size=N_SKUS)
    adjective = rng.integers(0, len(ADJECTIVES), size=N_SKUS)
    product_name = ADJECTIVES.gather(adjective) + " " + nouns.gather(noun)
    # A companion from its own category or its complement, any SKU of it.
    complement = np.array([names.index(COMPLEMENTS[name]) for name in names])
    target = np.where(rng.random(N_SKUS) < 0.5, category, complement[category])
    by_category = np.argsort(category, kind="stable")
    start = np.searchsorted(category[by_category], np.arange(len(names)))
    size = np.bincount(category, minlength=len(names))
    pick = start[target] + (rng.random(N_SKUS) * size[target]).astype(np.int64)
    companion = by_category[np.minimum(pick, N_SKUS - 1)]
    companion = np.where(
        (rng.random(N_SKUS) < COMPANION_SHARE) & (companion != np.arange(N_SKUS)), companion, -1
    )
    return Catalogue(category, companion, product_name, pl.Series(names).gather(category))

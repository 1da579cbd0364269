"""``vlbench cache info`` and ``cache clear``: the persistent embedding cache and the pixel cache beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from vlbench.cli import CacheDirOption, RegistryOption, _cache_dir, _catalog, app, user_errors

cache_app = typer.Typer(help="The persistent embedding and pixel caches: what they hold and clearing them.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
@user_errors
def cache_info(cache_dir: Optional[Path] = CacheDirOption) -> None:
    """Size of the caches: embeddings per model, transformed crops per transform geometry."""
    from rich.markup import escape

    from vlbench.console import console, print_table
    from vlbench.encoding.cache import EmbeddingStore
    from vlbench.encoding.pixel_cache import PixelStore

    store = EmbeddingStore(_cache_dir(cache_dir))
    rows = store.info()
    table = Table("model", "precision", "device", "entries", "size (MB)", title="embeddings", title_justify="left")
    for row in rows:
        table.add_row(escape(str(row.get("model"))), str(row.get("precision")), str(row.get("device_type")), str(row["entries"]), f"{row['bytes'] / 1e6:.1f}")
    print_table(table)
    total = sum(row["bytes"] for row in rows)
    console.print(f"{store.root}: {sum(row['entries'] for row in rows)} entries, {total / 1e6:.1f} MB", highlight=False, markup=False)
    pixels = PixelStore(_cache_dir(cache_dir))
    pixel_rows = pixels.info()
    table = Table("transform (steps before ToTensor)", "pillow", "torchvision", "images", "size (MB)", title="pixels", title_justify="left")
    for row in pixel_rows:
        table.add_row(escape(str(row.get("steps"))), str(row.get("pillow")), str(row.get("torchvision")), str(row["entries"]), f"{row['bytes'] / 1e6:.1f}")
    print_table(table)
    total = sum(row["bytes"] for row in pixel_rows)
    console.print(f"{pixels.base.parent}: {sum(row['entries'] for row in pixel_rows)} transformed images, {total / 1e6:.1f} MB",
                  highlight=False, markup=False)


@cache_app.command("clear")
@user_errors
def cache_clear(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Only this model's entries (a spec or alias); default: everything."),
    pixels: bool = typer.Option(False, "--pixels", help="Clear the pixel cache (transformed crops) instead of the embeddings."),
    cache_dir: Optional[Path] = CacheDirOption,
    registry: Optional[list[Path]] = RegistryOption,
) -> None:
    """Delete cached embeddings, of one model or all (or, with --pixels, every cached transformed image)."""
    from vlbench.console import console
    from vlbench.encoding.cache import EmbeddingStore

    if pixels:
        from vlbench.encoding.pixel_cache import PixelStore

        store_of_pixels = PixelStore(_cache_dir(cache_dir))
        removed = store_of_pixels.clear()
        console.print(f"removed {removed} transform geometr{'y' if removed == 1 else 'ies'} from {store_of_pixels.base.parent}", highlight=False, markup=False)
        return
    store = EmbeddingStore(_cache_dir(cache_dir))
    models = None
    if model is not None:
        models = {model.strip(), _catalog(None, registry).resolve_model(model).id}
    removed = store.clear(models)
    what = f"model {model}" if model else "all models"
    console.print(f"removed {removed} cached model(s) ({what}) from {store.root}", highlight=False, markup=False)

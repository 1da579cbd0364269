"""Models for a run: each loaded once, or answered from the embedding cache without loading at all.

``ModelLoader.model`` gives the run's model: a ``DeferredModel`` when the cache recorded its identity under
the same pin (``vlbench.models.deferred``), else the loaded adapter, whose identity it records. The run's
text-padding setting reaches the adapter here and nowhere else; models a task needs besides the run's (an
ensemble's members) are loaded once per run (``extra``).
"""

from __future__ import annotations

from typing import Any, Callable

from vlbench import distributed
from vlbench.encoding.encoder import Encoder
from vlbench.errors import ModelLoadError, VLBenchError
from vlbench.models.openclip_import import make_whole
from vlbench.spec.model_spec import ModelSpec
from vlbench.run.settings import RunSettings, resolve_device
from vlbench.spec.catalog import Catalog


class ModelLoader:
    def __init__(self, catalog: Catalog, settings: RunSettings, log: Callable[[str], None], provided: dict[str, Any] | None = None):
        self.catalog, self.settings, self.log = catalog, settings, log
        self.provided = provided if provided is not None else {}  # model id -> an adapter already in memory, used as it is
        self._extra: dict[str, tuple[Any, Encoder, dict[str, Any]]] = {}  # spec text -> (model, its encoder, fingerprint)

    @property
    def text_trimming(self) -> bool:
        return not self.settings.full_text_padding

    def store(self) -> Any:
        from vlbench.encoding.cache import EmbeddingStore

        return None if self.settings.cache_dir is None else EmbeddingStore(self.settings.cache_dir)

    def model(self, spec: ModelSpec) -> Any:
        """The model, loaded; or, when the cache recorded its identity under the same pin, a stand-in
        that loads it only if the run needs more than cached embeddings (vlbench.models.deferred)."""
        from vlbench.models.deferred import DeferredModel, identity_pin, model_record, usable_record

        if spec.id in self.provided:
            model = self.provided[spec.id]
            model.allow_text_trimming = self.text_trimming
            return model
        store = self.store()
        device = resolve_device(self.settings.device)

        def pin_now() -> str | None:
            if store is None or distributed.current().active:  # ranks must load together
                return None
            return identity_pin(self.catalog.adapter_class(spec.adapter), spec, device, self.settings.precision, self.text_trimming)

        pin = pin_now()
        record = usable_record(store.model_record(pin)) if pin else None
        if record is not None:
            self.log(f"model {spec.id}: identity read from the embedding cache; it is loaded only if an input is not cached")
            return DeferredModel(spec, device, self.settings.precision, record, build=lambda: self.load(spec),
                                 forget=lambda: store.forget_model_record(pin))
        model = self.load(spec)
        pin = pin_now()  # again: loading may have downloaded a hub model's snapshot, or completed it
        if pin and model.fingerprint().get("weights_sha256"):
            try:
                store.write_model_record(pin, model_record(model))
            except OSError:
                pass  # the cache folder is not writable: cache() says so
        return model

    def load(self, spec: ModelSpec) -> Any:
        """Build the adapter (rank 0 first, so that it downloads alone); its errors are one line."""
        adapter_class = self.catalog.adapter_class(spec.adapter)
        if spec.adapter != "openclip":  # another adapter may build open_clip towers itself
            make_whole()
        device = resolve_device(self.settings.device)
        self.log(f"loading model {spec.id} on {device}")
        world = distributed.current()
        if not world.is_main:
            distributed.barrier()  # rank 0 loads (and downloads) first
        try:
            model = adapter_class(spec, device=device, precision=self.settings.precision)
        except VLBenchError:
            raise
        except Exception as exc:  # an adapter's own bug or an incomplete adapter class
            where = f"{getattr(adapter_class, '__module__', '?')}.{getattr(adapter_class, '__qualname__', adapter_class)}"
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ModelLoadError(f"model adapter '{spec.adapter}' ({where}) failed to load {spec.id}: {type(exc).__name__}: {first} "
                                 "(--debug shows the traceback)") from exc
        finally:
            if world.is_main:
                distributed.barrier()
        model.allow_text_trimming = self.text_trimming  # part of the model's pin; recorded as env.text_padding
        return model

    def cache(self, model: Any, fingerprint: dict[str, Any]) -> Any:
        """This model's part of the persistent embedding cache, or None (off, or no weights hash)."""
        store = self.store()
        if store is None:
            return None
        if not fingerprint.get("weights_sha256"):
            self.log(f"embedding cache not used: {fingerprint['id']} reports no weights hash to key it by")
            return None
        try:
            return store.namespace(fingerprint, model.device.type)
        except OSError as exc:
            self.log(f"embedding cache not used: cannot write {self.settings.cache_dir} ({exc.strerror or exc})")
            return None

    def extra(self, text: str, like: Encoder) -> tuple[Any, Encoder, dict[str, Any]]:
        """A model a task needs besides the run's (e.g. an ensemble member), with an encoder like the run's."""
        if text not in self._extra:
            model = self.load(self.catalog.resolve_model(text))
            encoder = Encoder(model, batch_size=like.batch_size, num_workers=like.num_workers, progress=like.progress)
            self._extra[text] = (model, encoder, model.fingerprint())
        return self._extra[text]

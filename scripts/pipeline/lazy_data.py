"""Data lists and datasets that read nothing until a workflow runs.

MONAI's ``ConfigWorkflow.check_properties()`` (what the model zoo, MONAI Label and ``monai.bundle.load`` users call)
instantiates ``dataset`` / ``train#dataset`` and the engines to see that they exist. A data list read at
instantiation would make that check fail on a machine that holds the bundle but no data yet, and a ``CacheDataset``
would load and cache every scan just to be checked.

These wrappers read their data only when told to (``load()`` / ``build()``, the first steps of the configs' ``run``)
or on first item access. Until then they have no length, like an iterable dataset: ``len()`` raises ``TypeError``,
which MONAI's engines take as "epoch length not known yet" and ignite fills in when the engine runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence, Sized
from typing import Any

import torch
from monai.data import CacheDataset
from torch.utils.data import RandomSampler, Sampler

__all__ = ["DeferredCacheDataset", "DeferredRandomSampler", "LazyList"]


class LazyList(Sequence):
    """A list made by ``factory()`` on first use (``len``, indexing or iteration), then kept.

    Args:
        factory: a zero-argument callable returning the entries, e.g. a config node with ``"_mode_": "callable"``
            (a ``functools.partial`` of :func:`scripts.io.discover.inference_datalist` with its arguments).

    Errors of ``factory`` (a missing data folder, say) surface at :meth:`load` or the first item access, with the
    factory's own message.
    """

    def __init__(self, factory: Callable[[], Sequence[Any]]) -> None:
        if not callable(factory):
            raise TypeError(f"LazyList needs a callable that returns the entries, got {type(factory).__name__}")
        self._factory = factory
        self._items: list[Any] | None = None

    def load(self) -> LazyList:
        """Make the entries now (once); returns ``self`` so that ``len(lazy.load())`` reads naturally."""
        if self._items is None:
            self._items = list(self._factory())
        return self

    @property
    def loaded(self) -> bool:
        return self._items is not None

    def __len__(self) -> int:
        if self._items is None:
            raise TypeError("LazyList has no length until load() has read its entries")
        return len(self._items)

    def __getitem__(self, index):  # type: ignore[override]
        return self.load()._items[index]  # type: ignore[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.load()._items)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        state = "not read yet" if self._items is None else f"{len(self._items)} entries"
        return f"LazyList({state})"


class DeferredCacheDataset(CacheDataset):
    """A :class:`monai.data.CacheDataset` that reads and caches its data when built, not at construction.

    Takes the arguments of ``CacheDataset`` (``data`` may be a :class:`LazyList`). :meth:`build` or the first item
    access builds the cache exactly as ``CacheDataset(**kwargs)`` would; before that ``len()`` raises ``TypeError``
    (see the module docstring) and the attributes that ``CacheDataset`` sets do not exist.
    """

    def __init__(self, data: Sequence, transform: Any = None, **kwargs: Any) -> None:
        # CacheDataset.__init__ is called later, by _build(); until then only these two attributes exist
        self.__dict__["_deferred_args"] = (data, transform, kwargs)
        self.__dict__["_built"] = False

    def build(self) -> DeferredCacheDataset:
        """Read and cache the data now (once); returns ``self``."""
        if not self.__dict__["_built"]:
            data, transform, kwargs = self.__dict__["_deferred_args"]
            # set first: CacheDataset.__init__ reads attributes that would otherwise come back through __getattr__
            self.__dict__["_built"] = True
            super().__init__(data=list(data), transform=transform, **kwargs)
        return self

    def __getattr__(self, name: str) -> Any:
        # reached only for attributes CacheDataset.__init__ sets; building here would defeat the deferral (MONAI's
        # DataLoader probes the dataset with hasattr when it is made)
        raise AttributeError(f"{type(self).__name__}.{name} exists once build() has read the data")

    def __len__(self) -> int:
        if not self.__dict__["_built"]:
            raise TypeError("DeferredCacheDataset has no length until build() has read its data")
        return super().__len__()

    def __getitem__(self, index):  # type: ignore[override]
        return super(DeferredCacheDataset, self.build()).__getitem__(index)


class DeferredRandomSampler(Sampler[int]):
    """``torch.utils.data.RandomSampler`` over a dataset whose length is known only once it is built.

    ``RandomSampler`` asks for the dataset's length when it is made, which a :class:`DeferredCacheDataset` cannot
    answer before ``run``. This sampler makes a ``RandomSampler`` at each iteration, so the order drawn is the one
    ``DataLoader(shuffle=True)`` would draw from the same random state.
    """

    def __init__(self, data_source: Sized, generator: torch.Generator | None = None) -> None:
        self.data_source = data_source
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        return iter(RandomSampler(self.data_source, generator=self.generator))

    def __len__(self) -> int:
        return len(self.data_source)

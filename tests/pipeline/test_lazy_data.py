"""scripts.pipeline.lazy_data: nothing is read before load()/build(); afterwards each behaves as the eager type."""

from __future__ import annotations

import pytest
import torch
from monai.data import CacheDataset, DataLoader
from monai.transforms import Compose, Lambdad, RandLambdad
from scripts.pipeline.lazy_data import DeferredCacheDataset, DeferredRandomSampler, LazyList


def _counting_factory(items):
    calls = []

    def factory():
        calls.append(1)
        return list(items)

    return factory, calls


def test_lazy_list_reads_once_and_only_when_asked():
    factory, calls = _counting_factory([{"a": 1}, {"a": 2}])
    lazy = LazyList(factory)
    assert not lazy.loaded and calls == []
    with pytest.raises(TypeError, match="no length until load"):
        len(lazy)
    assert len(lazy.load()) == 2 and calls == [1]
    assert lazy[1] == {"a": 2} and list(lazy) == [{"a": 1}, {"a": 2}]
    lazy.load()
    assert calls == [1]


def test_lazy_list_iteration_loads_and_factory_errors_surface():
    lazy = LazyList(lambda: iter(["x", "y"]))
    assert list(lazy) == ["x", "y"] and len(lazy) == 2

    def missing():
        raise FileNotFoundError("data/datalist.json: not found")

    with pytest.raises(FileNotFoundError, match="datalist.json"):
        LazyList(missing).load()
    with pytest.raises(TypeError, match="callable"):
        LazyList([1, 2])  # type: ignore[arg-type]


def test_deferred_cache_dataset_equals_cache_dataset_once_built():
    factory, calls = _counting_factory([{"x": i} for i in range(5)])
    transform = Compose([Lambdad("x", lambda v: v * 10)])
    ds = DeferredCacheDataset(data=LazyList(factory), transform=transform, cache_rate=1.0, progress=False)
    # MONAI's DataLoader and engines probe the dataset when they are made: none of that may read the data
    loader = DataLoader(ds, batch_size=1, num_workers=0)
    assert calls == []
    with pytest.raises(TypeError):
        len(ds)
    with pytest.raises(AttributeError, match="build"):
        ds.cache_num  # noqa: B018
    ds.build()
    eager = CacheDataset(data=[{"x": i} for i in range(5)], transform=transform, cache_rate=1.0, progress=False)
    assert calls == [1] and len(ds) == len(eager) == 5 and ds.cache_num == 5
    assert [ds[i] for i in range(5)] == [eager[i] for i in range(5)]
    assert [int(b["x"]) for b in loader] == [0, 10, 20, 30, 40]


def test_deferred_random_sampler_draws_what_shuffle_true_draws():
    data = [{"x": i} for i in range(7)]
    ds = DeferredCacheDataset(data=LazyList(lambda: data), transform=None, cache_rate=0.0, progress=False)
    sampler = DeferredRandomSampler(ds)  # made before the dataset has a length
    ds.build()
    torch.manual_seed(3)
    deferred = list(sampler)
    torch.manual_seed(3)
    eager = list(torch.utils.data.RandomSampler(data))
    assert deferred == eager and sorted(deferred) == list(range(7)) and len(sampler) == 7


def test_random_transforms_are_seeded_by_the_data_loader_as_before():
    def make(ds_cls, data):
        t = Compose([RandLambdad("x", lambda v: v + torch.rand(1).item(), prob=1.0)])
        return ds_cls(data=data, transform=t, cache_rate=0.0, progress=False)

    data = [{"x": 0.0} for _ in range(3)]
    deferred = make(DeferredCacheDataset, LazyList(lambda: data))
    eager = make(CacheDataset, data)
    torch.manual_seed(0)
    DataLoader(deferred, num_workers=0)
    torch.manual_seed(0)
    DataLoader(eager, num_workers=0)
    deferred.build()
    assert deferred.transform.R.get_state()[1].tolist() == eager.transform.R.get_state()[1].tolist()

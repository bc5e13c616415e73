"""How a batch of requests or results crosses a process boundary: as one stdlib pickle.

Ray serialises a plain list item by item (msgpack walks it and hands every dataclass to
cloudpickle), which costs several times the CPU of one `pickle.dumps` of the whole list; with
32 replicas on a cluster the driver pays it for every request it sends and every result it
receives (benchmarks/scale_out.py). On arrival a `PickledBatch` is a plain list again, and in
one process it is a list, so nothing else needs to know about it.
"""
from __future__ import annotations

import pickle


class PickledBatch(list):
    def __reduce__(self):
        items = list(self)
        try:
            return pickle.loads, (pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL),)
        except (pickle.PicklingError, AttributeError, TypeError):  # a class stdlib pickle cannot name (defined in a function): Ray's cloudpickle
            return list, (items,)

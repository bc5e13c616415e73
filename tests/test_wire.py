"""PickledBatch: one stdlib pickle for the whole batch, a plain list on arrival, and Ray's own
pickler for what stdlib pickle cannot name."""
import pickle

from ray import cloudpickle

from actors.wire import PickledBatch
from orchestrator.protocols import GenerateRequest, GenerateResult, Sample


def test_a_batch_is_one_stdlib_pickle_of_its_items_and_comes_back_a_plain_list():
    items = [GenerateRequest(prompt=f"p{i}", n=2, seed=i) for i in range(3)]
    load, (blob,) = PickledBatch(items).__reduce__()
    assert load is pickle.loads and pickle.loads(blob) == items
    for pickler in (pickle, cloudpickle):  # cloudpickle: what Ray hands the batch to
        back = pickler.loads(pickler.dumps(PickledBatch(items)))
        assert back == items and type(back) is list


def test_what_stdlib_pickle_cannot_name_goes_through_cloudpickle_item_by_item():
    class Local:  # defined in a function: stdlib pickle cannot import it by name
        def __init__(self, x):
            self.x = x

    batch = PickledBatch([Local(1), GenerateResult([Sample("a", "eos", 1)], 3, 1)])
    assert batch.__reduce__()[0] is list
    back = cloudpickle.loads(cloudpickle.dumps(batch))
    assert type(back) is list and back[0].x == 1 and back[1].samples[0].text == "a"

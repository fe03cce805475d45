"""The ITC queue in the pretraining model: momentum encoders that follow the trained ones, fill the queue in
training only, take no gradient and no optimiser group, and travel in the state dict."""
import pytest
import torch
import torch.nn.functional as F

from models.gshn import GSHN, image_embedding, text_embedding
from models.momentum import MOMENTUM
from tests.models.test_gshn import TEXT, B, _batch
from tests.models.test_gshn import _model as _plain_model

pytestmark = pytest.mark.usefixtures("one_thread")
Q = 6


def _model(queue: int = Q) -> GSHN:
    torch.manual_seed(0)
    plain = _plain_model()
    return GSHN(plain.visual.cfg, plain.transformer.cfg, TEXT, plain.objectives, itc_queue=queue)


def _keyed(seed: int) -> object:
    batch = _batch(seed)
    batch.image_ids, batch.caption_ids = torch.arange(B) + 100 * seed, torch.arange(B) + 100 * seed
    return batch


def _momentum_embeddings(model: GSHN, batch) -> tuple[torch.Tensor, torch.Tensor]:
    m, nmask = model.momentum, batch.nodes.node_mask
    img = m["img_proj"](image_embedding(m["transformer"], m["visual"](batch.nodes).tokens, nmask))
    txt = m["txt_proj"](text_embedding(m["transformer"], batch.text_ids, batch.text_mask))
    return F.normalize(img, dim=-1), F.normalize(txt, dim=-1)


def test_training_steps_fill_the_queue_with_the_momentum_encoders_embeddings():
    model = _model()
    queue = model.itc.queue
    model.eval()(_keyed(0))
    assert int(queue.count) == 0                                   # evaluation leaves the queue alone
    model.train()(_keyed(0))
    assert int(queue.count) == B and queue.image_key[:B].tolist() == queue.caption_key[:B].tolist() == list(range(B))
    _, txt = _momentum_embeddings(model, _keyed(0))                 # text: no random draw (dropout 0 here)
    assert torch.allclose(queue.txt[:B], txt, atol=1e-6)
    assert torch.allclose(queue.img[:B].norm(dim=-1), torch.ones(B))
    model(_keyed(1))
    assert int(queue.count) == Q and int(queue.ptr) == 2 * B - Q   # wrapped: first in, first out
    assert queue.image_key.tolist() == [102, 103, 2, 3, 100, 101]


def test_itc_loss_grows_with_queued_negatives_and_leaves_the_rest():
    model, plain = _model(), _model(0)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict()})
    model.train()(_keyed(0))                                       # fills B of the Q slots
    torch.manual_seed(1)
    queued = model(_keyed(1))
    torch.manual_seed(1)
    base = plain.train()(_keyed(1))
    assert queued["itc"] > base["itc"]
    assert all(torch.allclose(queued[k], base[k]) for k in ("itm", "mlm", "stl"))


def test_momentum_encoders_follow_by_moving_average_and_are_never_trained():
    model = _model()
    trained = [p for group in model.parameter_groups().values() for p in group]
    following = list(model.momentum.parameters())
    assert not {id(p) for p in following} & {id(p) for p in trained}
    assert not any(p.requires_grad for p in following)
    assert len(trained) == len(list(_model(0).parameters()))        # every online parameter, nothing else
    opt = torch.optim.SGD(trained, lr=0.5)
    model.train()
    model(_keyed(0))["loss"].backward()
    before = [p.detach().clone() for p in following]
    opt.step()
    model(_keyed(1))
    online = [p for name in ("visual", "transformer", "img_proj", "txt_proj")
              for p in model._encoders()[name].parameters()]
    moved = 0
    for p_m, old, p in zip(following, before, online, strict=True):
        assert torch.allclose(p_m, MOMENTUM * old + (1 - MOMENTUM) * p, atol=1e-7)
        moved += not torch.equal(p_m, old)
    assert moved > 0


def test_queue_and_momentum_encoders_travel_in_the_state_dict():
    model = _model()
    model.train()(_keyed(0))
    state = model.state_dict()
    assert {"itc.queue.img", "itc.queue.txt", "itc.queue.image_key", "itc.queue.caption_key", "itc.queue.ptr",
            "itc.queue.count"} <= set(state)
    assert any(k.startswith("momentum.copies.transformer.") for k in state)
    fresh = _model()
    fresh.load_state_dict(state)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in state.items())
    assert int(fresh.itc.queue.count) == B


def test_gradient_probe_leaves_queue_and_momentum_encoders_as_they_were():
    model = _model()
    model.train()(_keyed(0))
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("itc.queue", "momentum."))}
    model.branch_gradient_norms(_keyed(1))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())

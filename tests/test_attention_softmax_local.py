"""Softmax and local families: structural reductions and window properties (spec §12.2-12.3)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from asrkit.config import AttentionConfig, ConfigError
from asrkit.model.attention import build_attention
from asrkit.model.attention.additive import AdditiveAttention
from asrkit.model.attention.base import gather_frames, weighted_frames
from asrkit.model.attention.dot import DotAttention, GeneralAttention
from asrkit.model.attention.local import LocalMAttention, LocalPAttention
from asrkit.model.attention.location import LocationAttention
from asrkit.model.attention.multihead import MultiHeadAttention

D = 6


def steps(att, memory, lengths, queries, mode="eval"):
    mem = att.prepare(memory, lengths)
    state = att.initial_state(mem)
    outputs = []
    for query in queries:
        out = att.step(query, mem, state, mode)
        state = out.state
        outputs.append(out)
    return outputs


def assert_same_outputs(a, b, atol: float = 1e-6) -> None:
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x.weights, y.weights, atol=atol, rtol=0)
        torch.testing.assert_close(x.context, y.context, atol=atol, rtol=0)


def test_general_with_identity_equals_dot() -> None:
    """S4: general with W_a = I is the plain dot product (dot with identity projections)."""
    general = GeneralAttention(D, D, scaling=1.0)
    dot = DotAttention(D, D, dim=D, scaling=D**0.5)  # undo dot's 1/sqrt(d)
    with torch.no_grad():
        for weight in (general.bilinear.weight, dot.query_proj.weight, dot.key_proj.weight):
            weight.copy_(torch.eye(D))
    memory, lengths, queries = torch.randn(2, 7, D), torch.tensor([7, 4]), torch.randn(3, 2, D)
    assert_same_outputs(
        steps(general, memory, lengths, queries), steps(dot, memory, lengths, queries)
    )


def test_location_with_zero_conv_equals_additive() -> None:
    """S4: location-aware attention with F = 0 is additive attention with the same W, V, w, b."""
    location = LocationAttention(4, D, dim=8, channels=3, kernel=5)
    additive = AdditiveAttention(4, D, dim=8)
    additive.load_state_dict(location.state_dict(), strict=False)
    torch.nn.init.zeros_(location.conv.weight)
    memory, lengths, queries = torch.randn(2, 9, D), torch.tensor([9, 5]), torch.randn(4, 2, 4)
    assert_same_outputs(
        steps(location, memory, lengths, queries), steps(additive, memory, lengths, queries)
    )


def test_location_state_and_uniform_init() -> None:
    """S5 and §1.2: alpha_0 = m / L_b, and the state after a step is that step's weights."""
    att = LocationAttention(4, D, dim=8, channels=2, kernel=3)
    mem = att.prepare(torch.randn(2, 6, D), torch.tensor([6, 4]))
    state = att.initial_state(mem)
    torch.testing.assert_close(state["prev"][1], torch.tensor([0.25] * 4 + [0.0] * 2))
    out = att.step(torch.randn(2, 4), mem, state, "train")
    assert out.state["prev"] is out.weights


def test_multihead_one_head_equals_dot() -> None:
    """S4: MHA with H = 1, identity W_v and W_o is single-head scaled dot attention."""
    mha = MultiHeadAttention(4, D, dim=D, heads=1)
    dot = DotAttention(4, D, dim=D)
    with torch.no_grad():
        mha.query_proj.weight.copy_(dot.query_proj.weight)
        mha.key_proj.weight.copy_(dot.key_proj.weight)
        mha.value_proj.weight.copy_(torch.eye(D))
        mha.out_proj.weight.copy_(torch.eye(D))
    memory, lengths, queries = torch.randn(2, 7, D), torch.tensor([7, 3]), torch.randn(3, 2, 4)
    assert_same_outputs(steps(mha, memory, lengths, queries), steps(dot, memory, lengths, queries))


def test_large_scaling_approaches_argmax() -> None:
    """S4: beta = 1e4 with distinct energies puts >= 1 - 1e-6 on the argmax."""
    att = GeneralAttention(D, D, scaling=1e4)
    memory, lengths, query = torch.randn(1, 9, D), torch.tensor([9]), torch.randn(1, 1, D)
    (out,) = steps(att, memory, lengths, query)
    assert out.weights.max() >= 1 - 1e-6


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="odd"):
        build_attention(AttentionConfig(kind="location", kernel=4), 4, 4)
    with pytest.raises(ConfigError, match="multiple of heads"):
        build_attention(AttentionConfig(kind="multihead", dim=10, heads=4), 4, 4)
    with pytest.raises(ConfigError, match="window"):
        build_attention(AttentionConfig(kind="local-p", window=0), 4, 4)
    with pytest.raises(ConfigError, match="window_back"):
        build_attention(AttentionConfig(kind="local-p", window=4, window_back=1), 4, 4)
    with pytest.raises(ConfigError, match="window_back"):
        build_attention(AttentionConfig(kind="local-m", window=4, window_back=-1), 4, 4)


@pytest.mark.parametrize(("back", "ahead"), [(0, 0), (1, 1), (3, 3), (0, 4), (1, 6), (5, 2)])
def test_local_m_window_support_and_monotone_centre(back: int, ahead: int) -> None:
    """L1/L7: weights are exactly 0 outside [c - D_l, c + D] and padding; the window reaches
    both ends (some mass lands on c - D_l and on c + D); c never decreases."""
    att = LocalMAttention(4, D, dim=8, window=ahead, window_back=back)
    lengths = torch.tensor([20, 6, 1])
    mem = att.prepare(torch.randn(3, 20, D), lengths)
    state = att.initial_state(mem)
    frames = torch.arange(20)
    for query in torch.randn(10, 3, 4):
        centre = state["centre"]
        out = att.step(5 * query, mem, state, "train")
        offset = frames - centre.unsqueeze(1)
        outside = (offset < -back) | (offset > ahead) | (frames >= lengths.unsqueeze(1))
        assert (out.weights[outside] == 0).all()
        for edge in (-back, ahead):  # first row: 20 valid frames, the edge is inside unless < 0
            frame = int(centre[0]) + edge
            if 0 <= frame < 20:
                assert out.weights[0, frame] > 0
        torch.testing.assert_close(out.weights.sum(1), torch.ones(3), atol=1e-6, rtol=0)
        assert (out.state["centre"] >= centre).all()
        assert (out.state["centre"] < lengths).all()
        state = out.state


def test_local_m_centre_follows_expectation() -> None:
    """§3.1: the next centre is the rounded expected position of the current weights."""
    att = LocalMAttention(4, D, dim=8, window=4)
    mem = att.prepare(torch.randn(1, 12, D), torch.tensor([12]))
    out = att.step(torch.randn(1, 4), mem, att.initial_state(mem), "eval")
    expected = (out.weights[0] * torch.arange(12.0)).sum().round().long()
    assert int(out.state["centre"][0]) == int(expected)


def test_local_m_with_wide_window_equals_dot() -> None:
    """L4: with D >= L_b the window covers everything and local-m is its global scorer."""
    local = LocalMAttention(4, D, dim=8, window=12)
    dot = DotAttention(4, D, dim=8)
    dot.load_state_dict(local.state_dict())
    memory, lengths, queries = torch.randn(2, 10, D), torch.tensor([10, 3]), torch.randn(4, 2, 4)
    assert_same_outputs(
        steps(local, memory, lengths, queries), steps(dot, memory, lengths, queries)
    )


def test_local_m_median_centre_ignores_a_stray_peak() -> None:
    """§3.1 centre = median: the first frame where the cumulative weight reaches 1/2. With 0.6
    on frame 2 and 0.4 on frame 9 the expectation (4.8 -> 5) lies between the peaks, the median
    on the main one; both never move back, and a row without weight keeps its centre."""
    weights = torch.zeros(3, 12)
    weights[0, 2], weights[0, 9] = 0.6, 0.4
    weights[1, 3], weights[1, 4] = 0.5, 0.5  # cumulative weight reaches 1/2 at frame 3
    index = torch.arange(12).expand(3, 12)
    centre = torch.tensor([0, 0, 7])
    median = LocalMAttention(4, D, dim=8, window=4, centre="median")
    mean = LocalMAttention(4, D, dim=8, window=4)
    assert median.next_centre(weights, index, centre).tolist() == [2, 3, 7]
    assert mean.next_centre(weights, index, centre).tolist() == [5, 4, 7]
    assert median.next_centre(weights, index, torch.tensor([4, 4, 4])).tolist() == [4, 4, 4]
    with pytest.raises(ConfigError, match="centre"):
        build_attention(AttentionConfig(kind="local-m", window=4, centre="mode"), 4, 4)
    with pytest.raises(ConfigError, match="local-m only"):
        build_attention(AttentionConfig(kind="local-p", window=4, centre="median"), 4, 4)


def test_local_location_score_is_location_attention_inside_the_window() -> None:
    """score = location: inside a window covering every frame, local-m is `LocationAttention`
    (same W, V, b, w, F, U) step after step from the same previous alignment, the conv of the
    widened window reading zeros beyond the frames as the global conv's padding does."""
    local = LocalMAttention(4, D, dim=8, window=12, window_back=12, score="location", kernel=5)
    location = LocationAttention(4, D, dim=8, channels=10, kernel=5)
    with torch.no_grad():
        location.query_proj.weight.copy_(local.query_proj.weight)
        location.key_proj.weight.copy_(local.key_proj.weight)
        location.key_proj.bias.copy_(local.concat_bias)
        location.score.weight.copy_(local.concat_score.weight)
        location.conv.weight.copy_(local.conv.weight)
        location.location_proj.weight.copy_(local.location_proj.weight)
    memory, lengths, queries = torch.randn(2, 10, D), torch.tensor([10, 3]), torch.randn(4, 2, 4)
    local_mem, global_mem = local.prepare(memory, lengths), location.prepare(memory, lengths)
    global_state = location.initial_state(global_mem)
    local_state = {**local.initial_state(local_mem), "prev": global_state["prev"]}
    for query in queries:
        want = location.step(query, global_mem, global_state, "eval")
        got = local.step(query, local_mem, local_state, "eval")
        assert_same_outputs([got], [want])
        global_state, local_state = want.state, got.state
    first = local.initial_state(local.prepare(memory, torch.tensor([10, 0])))["prev"]
    assert first.tolist()[0] == [1.0] + [0.0] * 9 and not first[1].any()
    with pytest.raises(ConfigError, match="kernel"):
        LocalMAttention(4, D, dim=8, window=2, score="location", kernel=4)


@pytest.mark.parametrize("kind", [LocalMAttention, LocalPAttention])
def test_local_concat_score_is_additive_inside_the_window(kind: type) -> None:
    """§3.2 score = concat: window energies are Bahdanau's w^T tanh(W q + V h + b), so
    local-m over a window covering every frame is `AdditiveAttention`; local-p's window softmax
    (its Gaussian divided out) is the additive softmax restricted to the window."""
    local = kind(4, D, dim=8, window=12, score="concat")
    additive = AdditiveAttention(4, D, dim=8)
    with torch.no_grad():
        additive.query_proj.weight.copy_(local.query_proj.weight)
        additive.key_proj.weight.copy_(local.key_proj.weight)
        additive.key_proj.bias.copy_(local.concat_bias)
        additive.score.weight.copy_(local.concat_score.weight)
    memory, lengths, queries = torch.randn(2, 10, D), torch.tensor([10, 3]), torch.randn(4, 2, 4)
    mem = local.prepare(memory, lengths)
    centre = torch.tensor([0, 0]) if kind is LocalMAttention else torch.tensor([5, 1])
    for query in queries:
        window, _, _ = local.window_softmax(query, mem, centre)  # covers [0, 10) either way
        full = additive.step(query, additive.prepare(memory, lengths), {}, "eval").weights
        offset = 12 - centre  # frame j sits at window column j + D_l - centre
        picked = torch.stack([window[b, offset[b] : offset[b] + 10] for b in range(2)])
        torch.testing.assert_close(picked, full, atol=1e-6, rtol=0)
    if kind is LocalMAttention:
        assert_same_outputs(
            steps(local, memory, lengths, queries), steps(additive, memory, lengths, queries)
        )
    with pytest.raises(ConfigError, match="score"):
        kind(4, D, dim=8, window=2, score="bilinear")


def test_local_p_uses_valid_length_and_gaussian() -> None:
    """L3/L5/P13: p in [0, L_b - 1]; unnormalised weights = window softmax * Gaussian with
    sigma = D / 2 (checked at integer frames with equal energies); renormalised rows sum to 1."""
    att = LocalPAttention(4, D, dim=8, window=4)
    torch.nn.init.zeros_(att.key_proj.weight)  # all energies equal
    lengths = torch.tensor([30, 7])
    mem = att.prepare(torch.randn(2, 30, D), lengths)
    query = 3 * torch.randn(2, 4)
    p = att.position(query, lengths)
    assert (p >= 0).all() and (p <= (lengths - 1)).all()
    out = att.step(query, mem, {}, "eval")
    for b in range(2):
        centre = int(p[b].floor())
        support = [j for j in range(centre - 4, centre + 5) if 0 <= j < int(lengths[b])]
        gauss = torch.exp(
            -((torch.tensor(support, dtype=torch.float32) - p[b]) ** 2) / (2 * 2.0**2)
        )
        expected = torch.zeros(30)
        expected[support] = gauss / len(support)
        torch.testing.assert_close(out.weights[b], expected, atol=1e-6, rtol=0)
        assert out.weights[b].sum() <= 1
    renorm = LocalPAttention(4, D, dim=8, window=4, renormalize=True)
    renorm.load_state_dict(att.state_dict())
    out = renorm.step(query, renorm.prepare(mem.values, lengths), {}, "eval")
    torch.testing.assert_close(out.weights.sum(1), torch.ones(2), atol=1e-6, rtol=0)


def test_local_p_edges_and_position_gradient() -> None:
    """L2/L6: D > L_b gives no index error and no weight outside [0, L_b); the loss reaches
    the position MLP (v_p, W_p) through the Gaussian factor."""
    att = LocalPAttention(4, D, dim=8, window=8)
    lengths = torch.tensor([3, 1])
    mem = att.prepare(torch.randn(2, 5, D), lengths)
    out = att.step(torch.randn(2, 4), mem, {}, "train")
    assert (out.weights[0, 3:] == 0).all() and (out.weights[1, 1:] == 0).all()
    (out.context.sum() + (out.weights * torch.arange(5.0)).sum()).backward()
    assert att.position_score.weight.grad.abs().sum() > 0
    assert att.position_hidden.weight.grad.abs().sum() > 0


def test_weighted_frames_equals_gather_and_bmm() -> None:
    """The window sum (embedding_bag) equals gathering the frames and a batched matmul, in
    value and in both gradients, with 3 rows sharing each item and clamped repeats."""
    torch.manual_seed(0)
    x = torch.randn(2, 9, 5, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (6, 4))
    index[0] = torch.tensor([0, 0, 0, 1])  # a clamped window start repeats frame 0
    weights = torch.rand(6, 4, dtype=torch.float64, requires_grad=True)
    summed = weighted_frames(x, index, weights)
    reference = torch.bmm(weights.unsqueeze(1), gather_frames(x, index)).squeeze(1)
    torch.testing.assert_close(summed, reference, atol=1e-12, rtol=0)
    grad = torch.randn_like(summed)
    got = torch.autograd.grad(summed, (x, weights), grad)
    want = torch.autograd.grad(reference, (x, weights), grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert float(got[0][1].abs().sum()) > 0  # rows 3-5 read (and feed back into) item 1


@pytest.mark.parametrize("score", ["general", "location"])
@pytest.mark.parametrize("kind", ["local-m", "local-p"])
def test_gradient_sinks_equal_plain_window_reads(kind: str, score: str) -> None:
    """Training reads windows through gradient sinks (one buffer per batch): the loss and the
    gradients of the encoder output, the parameters and the queries over several decoder steps
    equal those of plain window reads, with a padded item and clamped window edges."""
    torch.manual_seed(0)
    config = AttentionConfig(kind=kind, dim=6, window=2, score=score, kernel=3)
    att = build_attention(config, 4, 5).double()
    memory = torch.randn(2, 9, 5, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 4])
    queries = torch.randn(4, 2, 4, dtype=torch.float64, requires_grad=True)

    def run(with_sinks: bool) -> tuple[torch.Tensor, ...]:
        mem = att.prepare(memory * 1.0, lengths)  # a non-leaf, like the listener's output
        assert set(mem.sinks) == {"keys", "values"}
        if not with_sinks:
            mem = replace(mem, sinks={})
        state, loss = att.initial_state(mem), memory.new_zeros(())
        for step in range(queries.shape[0]):
            out = att.step(queries[step], mem, state, "train")
            loss = loss + (out.context**2).sum() + (out.weights * torch.arange(9.0)).sum()
            state = out.state
        return (loss, *torch.autograd.grad(loss, (memory, queries, *att.parameters())))

    plain = run(with_sinks=False)
    for a, b in zip(run(with_sinks=True), plain, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert float(plain[1][1, 4:].abs().sum()) == 0  # padding of item 1 gets no gradient


def test_no_gradient_sinks_when_decoding() -> None:
    att = build_attention(AttentionConfig(kind="local-m", dim=6, window=2), 4, 5)
    memory = torch.randn(2, 9, 5, requires_grad=True)
    with torch.no_grad():
        assert not att.prepare(memory, torch.tensor([9, 4])).sinks
    # Frozen frames: only the keys (projected by trained weights) need a sink.
    assert set(att.prepare(memory.detach(), torch.tensor([9, 4])).sinks) == {"keys"}

using Microsoft.ML.OnnxRuntime;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Tests.Common;

namespace SafeTune.Runtime.Tests;

public sealed class BoundSessionTests
{
    private const int Batch = 2, Sequence = 7, Vocab = 96;

    private static FixtureExpectation Fixture => FixtureExpectation.Load("gpt2_tiny_folded");

    [Fact]
    public void BoundInputsAndPreallocatedOutputMatchPlainRuns()
    {
        var e = Fixture;
        using var bound = new BoundSession(SessionFactory.Create(e.ModelPath));
        var first = (long[])e.InputIds.Clone();
        var second = OrtRun.RandomIds(5, Batch * Sequence, Vocab);

        using var logits = OrtValues.Zeros(ElementType.Float, Batch, Sequence, Vocab);
        Assert.All(OrtValues.ToFloats(logits), v => Assert.Equal(0f, v));
        bound.BindOutput("logits", logits);

        using (var ids = OrtValues.Wrap(first, Batch, Sequence))
        {
            bound.BindInput("input_ids", ids);
            bound.Run();
        }
        var boundFirst = OrtValues.ToFloats(logits);
        Assert.Equal([Batch, Sequence, Vocab], OrtValues.ShapeOf(logits));
        Assert.True(OrtRun.MaxAbsDiff(boundFirst, e.Logits) <= 1e-4);

        using (var ids = OrtValues.Wrap(second, Batch, Sequence))
        {
            bound.BindInput("input_ids", ids);
            bound.Run();
        }
        var boundSecond = OrtValues.ToFloats(logits);

        var plainFirst = OrtRun.Ids(bound.Session, first, Batch, Sequence)["logits"].Data;
        var plainSecond = OrtRun.Ids(bound.Session, second, Batch, Sequence)["logits"].Data;
        Assert.True(OrtRun.BitEqual(plainFirst, boundFirst), "first bound run differs from a plain run");
        Assert.True(OrtRun.BitEqual(plainSecond, boundSecond), "second bound run differs from a plain run");
        Assert.True(OrtRun.MaxAbsDiff(boundFirst, boundSecond) > 1e-3, "different inputs gave the same logits");
    }

    [Fact]
    public void WrappedInputIsReadInPlaceOnEveryRun()
    {
        var e = Fixture;
        using var bound = new BoundSession(SessionFactory.Create(e.ModelPath));
        var ids = (long[])e.InputIds.Clone();
        using var input = OrtValues.Wrap(ids, Batch, Sequence);
        using var logits = OrtValues.Zeros(ElementType.Float, Batch, Sequence, Vocab);
        bound.BindInput("input_ids", input);
        bound.BindOutput("logits", logits);

        bound.Run();
        Assert.True(OrtRun.MaxAbsDiff(OrtValues.ToFloats(logits), e.Logits) <= 1e-4);

        // Wrap does not copy: changing the array changes what the next run reads.
        var replacement = OrtRun.RandomIds(9, ids.Length, Vocab);
        replacement.CopyTo(ids, 0);
        bound.Run();
        var expected = OrtRun.Ids(bound.Session, replacement, Batch, Sequence)["logits"].Data;
        Assert.True(OrtRun.BitEqual(expected, OrtValues.ToFloats(logits)));
    }

    [Fact]
    public void OutputBoundToDeviceIsFetched()
    {
        var e = Fixture;
        using var bound = new BoundSession(SessionFactory.Create(e.ModelPath));
        using var ids = OrtValues.Copy<long>(e.InputIds, Batch, Sequence);
        bound.BindInput("input_ids", ids);
        bound.BindOutputToDevice("logits");

        using (var outputs = bound.RunAndFetch())
        {
            var v = Assert.Single(outputs);
            Assert.Equal([Batch, Sequence, Vocab], OrtValues.ShapeOf(v));
            Assert.True(OrtRun.MaxAbsDiff(OrtValues.ToFloats(v), e.Logits) <= 1e-4);
        }

        // Rebinding after ClearBindings works too, with another batch size.
        bound.ClearBindings();
        var other = OrtRun.RandomIds(3, 3 * 4, Vocab);
        using var otherIds = OrtValues.Wrap(other, 3, 4);
        bound.BindInput("input_ids", otherIds);
        bound.BindOutputToDevice("logits");
        using (var outputs = bound.RunAndFetch())
        {
            var v = Assert.Single(outputs);
            Assert.Equal([3, 4, Vocab], OrtValues.ShapeOf(v));
            var plain = OrtRun.Ids(bound.Session, other, 3, 4)["logits"].Data;
            Assert.True(OrtRun.BitEqual(plain, OrtValues.ToFloats(v)));
        }
    }

    [Fact]
    public void FromTensorDataAndCopyHoldTheData()
    {
        var t = TensorData.Create<float>("w", [2, 3], [1f, -2f, 3.5f, 0f, 1e-3f, -7f]);
        using var v = OrtValues.FromTensorData(t);
        Assert.Equal([2, 3], OrtValues.ShapeOf(v));
        Assert.Equal(t.AsSpan<float>().ToArray(), OrtValues.ToFloats(v));

        var data = new float[] { 4f, 5f, 6f, 7f };
        using var c = OrtValues.Copy<float>(data, 2, 2);
        data[0] = 100f; // a copy does not follow the array
        Assert.Equal([4f, 5f, 6f, 7f], OrtValues.ToFloats(c));

        var e = Assert.Throws<UserInputException>(() => OrtValues.Wrap(new float[5], 2, 3));
        Assert.Contains("[2, 3]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OrtValueBagHoldsOneValuePerName()
    {
        var bag = new OrtValueBag();
        var a = bag.Add("a", OrtValues.Copy<float>([1f, 2f], 2));
        var b1 = bag.Add("b", OrtValues.Zeros(ElementType.Float, 3));
        Assert.True(bag.Contains("a"));
        Assert.True(bag.Contains("b"));
        Assert.False(bag.Contains("c"));
        Assert.Same(a, bag["a"]);
        Assert.Same(b1, bag["b"]);
        Assert.Equal([1f, 2f], OrtValues.ToFloats(bag["a"]));

        // Replacing a name keeps one entry and hands out the new value.
        var b2 = bag.Add("b", OrtValues.Copy<float>([9f], 1));
        Assert.Same(b2, bag["b"]);
        Assert.Equal(["a", "b"], bag.Names.Order(StringComparer.Ordinal));
        Assert.Equal([9f], OrtValues.ToFloats(bag["b"]));

        // Adding the value already held under the name keeps it alive.
        Assert.Same(a, bag.Add("a", a));
        Assert.Equal([1f, 2f], OrtValues.ToFloats(bag["a"]));

        var missing = Assert.Throws<KeyNotFoundException>(() => bag["nope"]);
        Assert.Contains("'nope'", missing.Message, StringComparison.Ordinal);

        bag.Dispose();
        Assert.Empty(bag.Names);
        Assert.False(bag.Contains("a"));
        bag.Dispose();
    }
}

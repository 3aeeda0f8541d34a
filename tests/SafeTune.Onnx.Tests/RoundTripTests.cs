using Onnx;
using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

public class RoundTripTests
{
    public static TheoryData<string> Names() => Fixtures.DecoderNames();

    [Theory]
    [MemberData(nameof(Names))]
    public void Fixture_round_trips_node_for_node_and_byte_for_byte(string name)
    {
        var path = Fixtures.ModelPath(name);
        var original = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var model = Model.Load(path);
        using var dir = new TempDir();
        var saved = dir.File("copy.onnx");
        model.Save(saved);
        var again = Model.Load(saved);
        var proto = again.ToProto();

        Assert.Equal(original.IrVersion, proto.IrVersion);
        Assert.Equal(original.OpsetImport, proto.OpsetImport);
        Assert.Equal(original.Graph.Node, proto.Graph.Node);
        Assert.Equal(original.Graph.Input, proto.Graph.Input);
        Assert.Equal(original.Graph.Output, proto.Graph.Output);
        Assert.Equal(original.Graph.Initializer.Count, proto.Graph.Initializer.Count);
        for (int i = 0; i < original.Graph.Initializer.Count; i++)
            Assert.Equal(original.Graph.Initializer[i], proto.Graph.Initializer[i]);
        // Saving the reloaded model again gives the same bytes: the writer is deterministic.
        Assert.Equal(File.ReadAllBytes(saved), again.ToBytes());
    }

    [Fact]
    public void Pretrained_MiniLM_round_trips_with_identical_initializer_bytes()
    {
        var original = ModelProto.Parser.ParseFrom(MiniLm.ModelBytes);
        var model = MiniLm.Load();
        var reloaded = Model.FromBytes(model.ToBytes());
        Assert.Equal(original.Graph.Node, reloaded.ToProto().Graph.Node);
        foreach (var t in original.Graph.Initializer)
        {
            var mine = reloaded.Graph.FindInitializer(t.Name)!.Initializer!;
            Assert.True(t.RawData.Span.SequenceEqual(mine.Bytes), $"initializer {t.Name} changed");
        }
        Assert.Equal(148, reloaded.Graph.Initializers.Count());
    }

    [Fact]
    public void Edited_model_keeps_untouched_initializers_exactly()
    {
        var model = Model.Load(Fixtures.ModelPath("llama_tiny_unfolded"));
        var before = model.Graph.Initializers.ToDictionary(v => v.Name, v => v.Initializer!.Bytes.ToArray());
        var target = model.Graph.FindInitializer("model.norm.weight")!;
        var doubled = target.Initializer!.AsSpan<float>().ToArray().Select(x => 2 * x).ToArray();
        model.Graph.SetInitializer(target, TensorData.Create<float>("model.norm.weight", target.Initializer.Dims, doubled));

        var reloaded = Model.FromBytes(model.ToBytes());
        foreach (var v in reloaded.Graph.Initializers)
        {
            if (v.Name == "model.norm.weight") Assert.Equal(doubled, v.Initializer!.AsSpan<float>().ToArray());
            else Assert.True(before[v.Name].AsSpan().SequenceEqual(v.Initializer!.Bytes), v.Name);
        }
    }

    [Fact]
    public void Typed_data_fields_decode_like_raw_data()
    {
        var p = new TensorProto { Name = "t", DataType = (int)ElementType.Float };
        p.Dims.AddRange([2, 2]);
        p.FloatData.AddRange([1f, -2f, 3.5f, 0f]);
        var t = TensorData.FromProto(p, null);
        Assert.Equal([1f, -2f, 3.5f, 0f], t.AsSpan<float>().ToArray());

        var q = new TensorProto { Name = "h", DataType = (int)ElementType.Float16 };
        q.Dims.Add(2);
        q.Int32Data.AddRange([BitConverter.HalfToUInt16Bits((Half)1.5f), BitConverter.HalfToUInt16Bits((Half)(-4f))]);
        Assert.Equal([1.5, -4.0], TensorData.FromProto(q, null).ToDoubles());
    }

    [Fact]
    public void Tensor_with_wrong_byte_count_is_rejected_naming_it()
    {
        var p = new TensorProto { Name = "weights.bad", DataType = (int)ElementType.Float, RawData = Google.Protobuf.ByteString.CopyFrom(new byte[10]) };
        p.Dims.AddRange([3]);
        var e = Assert.Throws<OnnxFormatException>(() => TensorData.FromProto(p, null));
        Assert.Contains("weights.bad", e.Message);
        Assert.Contains("expected 12", e.Message);
    }
}

using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

public class MalformedModelTests
{
    [Fact]
    public void Every_truncation_of_a_model_fails_with_a_format_error_or_loads()
    {
        var bytes = File.ReadAllBytes(Fixtures.ModelPath("llama_tiny_folded"));
        var rng = new Random(7);
        var cuts = Enumerable.Range(0, 300).Select(_ => rng.Next(0, bytes.Length)).Concat([0, 1, 2, 10, bytes.Length - 1]).Distinct();
        foreach (int cut in cuts)
        {
            try
            {
                var m = Model.FromBytes(bytes.AsSpan(0, cut), displayName: $"cut@{cut}");
                // A cut that happens to end on a message boundary can still be a well-formed model.
                Assert.NotEmpty(m.Graph.Outputs);
            }
            catch (OnnxFormatException e)
            {
                Assert.StartsWith($"cut@{cut}: ", e.Message);
                Assert.DoesNotContain('\n', e.Message);
            }
        }
    }

    [Fact]
    public void Random_bytes_fail_with_a_format_error()
    {
        var rng = new Random(11);
        for (int i = 0; i < 200; i++)
        {
            var junk = new byte[rng.Next(1, 4096)];
            rng.NextBytes(junk);
            Assert.Throws<OnnxFormatException>(() => Model.FromBytes(junk, displayName: "junk"));
        }
    }

    [Fact]
    public void Missing_and_empty_files_are_named()
    {
        using var dir = new TempDir();
        Assert.Contains("file not found", Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("none.onnx"))).Message);
        File.WriteAllBytes(dir.File("empty.onnx"), []);
        var e = Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("empty.onnx")));
        Assert.Contains("empty.onnx", e.Message);
        Assert.Contains("empty", e.Message);
    }

    [Fact]
    public void Dangling_inputs_are_named()
    {
        var b = GraphBuilder.ForNewModel();
        var x = b.Input("x", ElementType.Float, 2);
        b.Output(b.Exp(x), "y");
        var proto = b.Model!.ToProto();
        proto.Graph.Node[0].Input[0] = "ghost";
        var e = Assert.Throws<OnnxFormatException>(() => Model.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(proto)));
        Assert.Contains("'ghost'", e.Message);
    }
}

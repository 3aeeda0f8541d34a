using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Tests.Common;
using SafeTune.TestSupport;

namespace SafeTune.Runtime.Tests;

public sealed class ExternalDataTests
{
    [Theory]
    [InlineData("llama_tiny_unfolded")]
    [InlineData("gpt2_tiny_folded")]
    public void ModelSavedWithExternalDataRunsFromItsPathAndRoundTrips(string name)
    {
        var e = FixtureExpectation.Load(name);
        var model = Model.Load(e.ModelPath);
        var inline = model.ToBytes();

        using var dir = new TempDir();
        var path = dir.File("model.onnx");
        model.Save(path, new SaveOptions { ExternalDataFile = "model.onnx_data" });

        var dataPath = dir.File("model.onnx_data");
        Assert.True(File.Exists(dataPath), "the external data file was not written");
        long onnxSize = new FileInfo(path).Length, dataSize = new FileInfo(dataPath).Length;
        var large = model.Graph.Initializers.Select(v => (long)v.Initializer!.Bytes.Length).Where(n => n >= 1024).ToList();
        long largeBytes = large.Sum();
        Assert.True(large.Count >= 5, $"{name} has only {large.Count} initializers of 1 KiB or more");
        // Every tensor of 1 KiB or more sits in the data file, 64-byte aligned.
        Assert.InRange(dataSize, largeBytes, largeBytes + 64L * large.Count);
        // The model file shrank by (nearly) all of those bytes; the rest of it is the graph itself.
        Assert.True(inline.Length - onnxSize >= 0.95 * largeBytes,
            $"model file is {onnxSize} bytes, the inline model {inline.Length}, externalized {largeBytes}");
        Assert.True(onnxSize < inline.Length / 2, $"model file is {onnxSize} bytes, the inline model {inline.Length}");

        using (var fromPath = SessionFactory.Create(path))
        using (var fromMemory = SessionFactory.Create(inline))
        {
            var a = OrtRun.Ids(fromPath, e.InputIds, e.InputShape[0], e.InputShape[1])["logits"];
            var b = OrtRun.Ids(fromMemory, e.InputIds, e.InputShape[0], e.InputShape[1])["logits"];
            Assert.Equal(e.LogitsShape, a.Shape);
            Assert.True(OrtRun.BitEqual(a.Data, b.Data), "logits from the external-data model differ from the inline model's");
            Assert.True(OrtRun.MaxAbsDiff(a.Data, e.Logits) <= 1e-4);
        }

        var loaded = Model.Load(path);
        var before = model.Graph.Initializers.ToDictionary(v => v.Name, v => v.Initializer!);
        var after = loaded.Graph.Initializers.ToDictionary(v => v.Name, v => v.Initializer!);
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), after.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, t) in before)
        {
            var u = after[key];
            Assert.Equal(t.ElementType, u.ElementType);
            Assert.Equal(t.Dims, u.Dims);
            Assert.True(t.Bytes.SequenceEqual(u.Bytes), $"initializer '{key}' changed bytes through external data");
        }
        // And the reloaded model serializes inline to the same bytes as before.
        Assert.Equal(inline, loaded.ToBytes());
    }
}

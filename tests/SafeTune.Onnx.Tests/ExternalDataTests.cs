using Google.Protobuf;
using Onnx;
using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

public class ExternalDataTests
{
    private static Model Small()
    {
        var b = GraphBuilder.ForNewModel(17);
        var x = b.Input("x", ElementType.Float, Dim.Symbol("n"), 512);
        var w = b.Parameter("big.weight", [.. Enumerable.Range(0, 512 * 4).Select(i => (float)Math.Sin(i))], 512, 4);
        var bias = b.Parameter("small.bias", [1f, 2f, 3f, 4f], 4);
        b.Output(b.Add(b.MatMul(x, w), bias), "y");
        return b.Model!;
    }

    [Fact]
    public void Large_tensors_go_to_the_data_file_and_load_back_identically()
    {
        using var dir = new TempDir();
        var model = Small();
        var path = dir.File("model.onnx");
        model.Save(path, new SaveOptions { ExternalDataFile = "model.onnx_data", ExternalDataThreshold = 1024 });

        Assert.True(File.Exists(dir.File("model.onnx_data")));
        Assert.Equal(512 * 4 * 4, new FileInfo(dir.File("model.onnx_data")).Length);
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var big = proto.Graph.Initializer.Single(t => t.Name == "big.weight");
        Assert.Equal(TensorProto.Types.DataLocation.External, big.DataLocation);
        Assert.Contains(big.ExternalData, e => e.Key == "location" && e.Value == "model.onnx_data");
        Assert.Equal(TensorProto.Types.DataLocation.Default, proto.Graph.Initializer.Single(t => t.Name == "small.bias").DataLocation);

        var loaded = Model.Load(path);
        foreach (var v in model.Graph.Initializers)
            Assert.True(v.Initializer!.Bytes.SequenceEqual(loaded.Graph.FindInitializer(v.Name)!.Initializer!.Bytes), v.Name);
        // Loaded data is held in memory: saving inline afterwards needs no data file.
        var inline = dir.File("inline.onnx");
        loaded.Save(inline);
        Assert.Equal(model.ToBytes(), Model.Load(inline).ToBytes());
    }

    [Fact]
    public void External_data_is_memory_mapped_and_outlives_the_reader()
    {
        using var dir = new TempDir();
        var path = dir.File("model.onnx");
        Small().Save(path, new SaveOptions { ExternalDataFile = "model.onnx.data", ExternalDataThreshold = 1024 });
        var loaded = Model.Load(path);
        var big = loaded.Graph.FindInitializer("big.weight")!.Initializer!;
        // Not a managed array: the bytes are a view of the mapped file.
        Assert.False(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(big.Memory, out _));
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(Enumerable.Range(0, 512 * 4).Select(i => (float)Math.Sin(i)), big.AsSpan<float>().ToArray());
        // Saving over the model that is still mapped (temp file + rename) keeps both the mapping and the new file right.
        loaded.Save(path, new SaveOptions { ExternalDataFile = "model.onnx.data", ExternalDataThreshold = 1024 });
        Assert.Equal(big.AsSpan<float>().ToArray(), Model.Load(path).Graph.FindInitializer("big.weight")!.Initializer!.AsSpan<float>().ToArray());
    }

    [Fact]
    public void Large_models_are_saved_with_external_data_by_default()
    {
        using var dir = new TempDir();
        var path = dir.File("model.onnx");
        Small().Save(path, new SaveOptions { ExternalDataAbove = 4096 });
        Assert.True(File.Exists(dir.File("model.onnx.data")));
        Small().Save(dir.File("inline.onnx"));
        Assert.False(File.Exists(dir.File("inline.onnx.data")));
    }

    [Fact]
    public void A_clone_shares_tensor_bytes_and_changes_independently()
    {
        var model = Small();
        var copy = model.Clone();
        Assert.Equal(model.ToBytes(), copy.ToBytes());
        var original = model.Graph.FindInitializer("big.weight")!.Initializer!;
        var cloned = copy.Graph.FindInitializer("big.weight")!.Initializer!;
        Assert.True(original.Memory.Span == cloned.Memory.Span, "the clone's tensor must share the original's bytes");

        copy.Graph.SetInitializer(copy.Graph.FindInitializer("small.bias")!, TensorData.Vector("small.bias", 9f, 9f, 9f, 9f));
        copy.Graph.PromoteInitializerToInput(copy.Graph.FindInitializer("big.weight")!);
        Assert.Equal([1f, 2f, 3f, 4f], model.Graph.FindInitializer("small.bias")!.Initializer!.AsSpan<float>().ToArray());
        Assert.NotNull(model.Graph.FindInitializer("big.weight"));
        Assert.Null(copy.Graph.FindInitializer("big.weight"));
    }

    [Fact]
    public void Deferred_tensors_stream_when_saved_and_materialize_when_read()
    {
        using var dir = new TempDir();
        var source = new CountingSource(Enumerable.Range(0, 1024).Select(i => (float)i).ToArray());
        var b = GraphBuilder.ForNewModel(17);
        var x = b.Input("x", ElementType.Float, 1024);
        var w = b.Parameter(TensorData.FromSource("w", ElementType.Float, [1024], source));
        b.Output(b.Mul(x, w), "y");
        var model = b.Model!;
        Assert.Equal(4096, model.Graph.FindInitializer("w")!.Initializer!.ByteCount);
        Assert.Equal(0, source.Writes);
        model.Save(dir.File("m.onnx"), new SaveOptions { ExternalDataFile = "m.onnx.data", ExternalDataThreshold = 16 });
        Assert.Equal(1, source.Writes);
        Assert.True(model.Graph.FindInitializer("w")!.Initializer!.IsDeferred);
        Assert.Equal(source.Values, Model.Load(dir.File("m.onnx")).Graph.FindInitializer("w")!.Initializer!.AsSpan<float>().ToArray());
        Assert.Equal(source.Values, model.Graph.FindInitializer("w")!.Initializer!.AsSpan<float>().ToArray());
        Assert.Equal(2, source.Writes);
        _ = model.Graph.FindInitializer("w")!.Initializer!.Bytes;
        Assert.Equal(2, source.Writes);
    }

    private sealed class CountingSource(float[] values) : ITensorSource
    {
        public float[] Values => values;
        public int Writes { get; private set; }
        public long ByteCount => values.Length * 4L;

        public void WriteTo(Stream destination)
        {
            Writes++;
            destination.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        }
    }

    [Fact]
    public void External_offsets_are_aligned()
    {
        using var dir = new TempDir();
        var b = GraphBuilder.ForNewModel(17);
        var x = b.Input("x", ElementType.Float, 3);
        var a = b.Parameter("a", new float[300], 300);
        var c = b.Parameter("c", new float[301], 301);
        b.Output(b.Add(b.ReduceSum(b.Mul(a, a), [0], false), b.ReduceSum(b.Mul(c, c), [0], false)), "s");
        _ = x;
        b.Model!.Save(dir.File("m.onnx"), new SaveOptions { ExternalDataFile = "m.bin", ExternalDataThreshold = 16, ExternalDataAlignment = 64 });
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(dir.File("m.onnx")));
        foreach (var t in proto.Graph.Initializer)
            Assert.Equal(0, long.Parse(t.ExternalData.Single(e => e.Key == "offset").Value) % 64);
    }

    private static void WriteModelPointingAt(string path, string location, long offset = 0, long length = 16) =>
        HostileFiles.ModelWithExternal(path, "w", location, [4], offset, length);

    [Theory]
    [InlineData("../../etc/passwd", "leaves the model's folder")]
    [InlineData("sub/../../outside.bin", "leaves the model's folder")]
    [InlineData("/etc/passwd", "absolute path")]
    [InlineData("C:/Windows/win.ini", "absolute path")]
    [InlineData("..\\secret.bin", "leaves the model's folder")]
    public void Locations_that_escape_the_model_folder_are_refused_naming_the_tensor(string location, string reason)
    {
        using var dir = new TempDir();
        var path = dir.File("evil.onnx");
        WriteModelPointingAt(path, location);
        var e = Assert.Throws<OnnxFormatException>(() => Model.Load(path));
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains(reason, e.Message);
        Assert.Contains("evil.onnx", e.Message);
    }

    [Fact]
    public void A_link_to_a_file_outside_is_refused()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        File.WriteAllBytes(outside.File("secret.bin"), new byte[16]);
        File.CreateSymbolicLink(dir.File("data.bin"), outside.File("secret.bin"));
        WriteModelPointingAt(dir.File("m.onnx"), "data.bin");
        var e = Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("m.onnx")));
        Assert.Contains("link", e.Message);
    }

    [Fact]
    public void Missing_file_and_out_of_range_data_are_reported()
    {
        using var dir = new TempDir();
        WriteModelPointingAt(dir.File("a.onnx"), "nothere.bin");
        Assert.Contains("does not exist", Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("a.onnx"))).Message);

        File.WriteAllBytes(dir.File("short.bin"), new byte[8]);
        WriteModelPointingAt(dir.File("b.onnx"), "short.bin");
        Assert.Contains("outside 'short.bin'", Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("b.onnx"))).Message);

        File.WriteAllBytes(dir.File("ok.bin"), new byte[64]);
        WriteModelPointingAt(dir.File("c.onnx"), "ok.bin", offset: 0, length: 12);
        Assert.Contains("does not match", Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("c.onnx"))).Message);
    }

    [Fact]
    public void A_file_in_a_subfolder_is_allowed()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("weights"));
        File.WriteAllBytes(dir.File("weights", "w.bin"), [.. BitConverter.GetBytes(1f), .. BitConverter.GetBytes(2f), .. BitConverter.GetBytes(3f), .. BitConverter.GetBytes(4f)]);
        WriteModelPointingAt(dir.File("m.onnx"), "weights/w.bin");
        var m = Model.Load(dir.File("m.onnx"));
        Assert.Equal([1f, 2f, 3f, 4f], m.Graph.FindInitializer("w")!.Initializer!.AsSpan<float>().ToArray());
    }
}

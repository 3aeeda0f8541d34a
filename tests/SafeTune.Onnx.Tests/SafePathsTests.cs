using System.Text;
using SafeTune.TestSupport;

namespace SafeTune.Onnx.Tests;

/// <summary>Containment through links, file kinds and checked sizes: what a hostile folder must not get past.</summary>
public class SafePathsTests
{
    private static void MakeFifo(string path) => HostileFiles.MakeFifo(path);

    private static void WriteModelPointingAt(string path, string location, long[] dims, long offset = 0) =>
        HostileFiles.ModelWithExternal(path, "w", location, dims, offset);

    [Fact]
    public void A_linked_folder_inside_the_model_folder_cannot_lead_outside()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        File.WriteAllBytes(outside.File("secret.bin"), new byte[16]);
        Directory.CreateSymbolicLink(dir.File("linkdir"), outside.Path);
        WriteModelPointingAt(dir.File("m.onnx"), "linkdir/secret.bin", [4]);
        var e = Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("m.onnx")));
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains("outside the model's folder", e.Message);
    }

    [Fact]
    public void A_link_chain_that_climbs_out_through_dot_dot_is_followed_as_the_kernel_does()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        Directory.CreateDirectory(outside.File("deep", "sub"));
        File.WriteAllBytes(outside.File("deep", "b"), new byte[16]);
        // dir/l2 -> OUTSIDE/deep/sub; dir/a -> l2/../b: lexically dir/b (inside), really OUTSIDE/deep/b.
        Directory.CreateSymbolicLink(dir.File("l2"), outside.File("deep", "sub"));
        File.CreateSymbolicLink(dir.File("a"), "l2/../b");
        File.WriteAllBytes(dir.File("b"), new byte[16]);
        Assert.Equal(outside.File("deep", "b"), SafePaths.RealPath(dir.File("a")));
        Assert.False(SafePaths.IsInside(dir.Path, dir.File("a")));
        WriteModelPointingAt(dir.File("m.onnx"), "a", [4]);
        Assert.Contains("outside", Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("m.onnx"))).Message);
    }

    [Fact]
    public void A_model_folder_reached_through_a_link_still_reads_its_own_files()
    {
        using var dir = new TempDir();
        using var elsewhere = new TempDir();
        Directory.CreateDirectory(dir.File("real"));
        File.WriteAllBytes(dir.File("real", "w.bin"), [.. BitConverter.GetBytes(1f), .. BitConverter.GetBytes(2f), .. BitConverter.GetBytes(3f), .. BitConverter.GetBytes(4f)]);
        WriteModelPointingAt(dir.File("real", "m.onnx"), "w.bin", [4]);
        Directory.CreateSymbolicLink(elsewhere.File("alias"), dir.File("real"));
        var m = Model.Load(elsewhere.File("alias", "m.onnx"));
        Assert.Equal([1f, 2f, 3f, 4f], m.Graph.FindInitializer("w")!.Initializer!.AsSpan<float>().ToArray());
    }

    [Fact]
    public void A_fifo_as_external_data_or_as_the_model_is_refused_without_blocking()
    {
        using var dir = new TempDir();
        MakeFifo(dir.File("pipe.bin"));
        WriteModelPointingAt(dir.File("m.onnx"), "pipe.bin", [4]);
        var e = Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("m.onnx")));
        Assert.Contains("named pipe", e.Message);
        MakeFifo(dir.File("pipe.onnx"));
        Assert.Contains("pipe.onnx", Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("pipe.onnx"))).Message);
        Assert.Equal(FileKind.Device, SafePaths.KindOf("/dev/null"));
    }

    [Theory]
    [InlineData(new long[] { 1L << 40, 1L << 40 }, "64 bits")]
    [InlineData(new long[] { (1L << 61) + 2, 2 }, "64 bits")]
    public void Shapes_whose_size_overflows_are_refused_naming_the_tensor(long[] dims, string reason)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("w.bin"), new byte[16]);
        WriteModelPointingAt(dir.File("m.onnx"), "w.bin", dims);
        var e = Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("m.onnx")));
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void An_offset_near_two_to_the_63_is_refused_naming_the_tensor()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("w.bin"), new byte[16]);
        WriteModelPointingAt(dir.File("m.onnx"), "w.bin", [4], offset: long.MaxValue - 4);
        var e = Assert.Throws<OnnxFormatException>(() => Model.Load(dir.File("m.onnx")));
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains("lies outside 'w.bin'", e.Message);
    }

    [Fact]
    public void Outputs_that_are_not_regular_files_are_refused_and_left_as_they_are()
    {
        using var dir = new TempDir();
        MakeFifo(dir.File("pipe"));
        Directory.CreateDirectory(dir.File("folder"));
        File.CreateSymbolicLink(dir.File("devlink"), "/dev/null");
        File.WriteAllText(dir.File("file"), "x");
        foreach (var (target, what) in new[] { ("pipe", "named pipe"), ("folder", "a folder"), ("devlink", "a device"), ("file/out.bin", "not a folder") })
        {
            var e = Assert.Throws<OutputFileException>(() => AtomicFile.WriteAllText(dir.File(target), "data"));
            Assert.Contains(what, e.Message);
            Assert.Contains(dir.File(target), e.Message);
        }
        Assert.Equal(FileKind.Fifo, SafePaths.KindOf(dir.File("pipe")));
        Assert.NotNull(new FileInfo(dir.File("devlink")).LinkTarget);
        Assert.Equal("x", File.ReadAllText(dir.File("file")));
        Assert.Empty(Directory.GetFiles(dir.File("folder")));
    }

    private static byte[] SafeTensorsBytes(string header, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(header);
        return [.. BitConverter.GetBytes((ulong)json.Length), .. json, .. new byte[dataBytes]];
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "overlap tensor 'a'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, "overlap tensor")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "gap of 4 bytes")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 8, "belong to no tensor")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4611686018427387906,2],"data_offsets":[0,8]}}""", 8, "64 bits")]
    public void Safetensors_offsets_must_tile_the_data_exactly(string header, int dataBytes, string reason)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("w.safetensors"), SafeTensorsBytes(header, dataBytes));
        var e = Assert.Throws<OnnxFormatException>(() => SafeTensors.Read(dir.File("w.safetensors")));
        Assert.Contains("w.safetensors", e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void Safetensors_that_tile_exactly_are_read_in_any_header_order()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("w.safetensors"), SafeTensorsBytes(
            """{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 8));
        Assert.Equal(["a", "b", "e"], SafeTensors.Read(dir.File("w.safetensors")).Tensors.Select(t => t.Name));
    }

    [Theory]
    [InlineData("No space left on device", "is full")]
    [InlineData("Read-only file system", "read-only file system")]
    public void A_disk_that_fails_mid_write_is_named_and_leaves_the_old_file(string error, string reason)
    {
        using var dir = new TempDir();
        var target = dir.File("out.json");
        File.WriteAllText(target, "old");
        var e = Assert.Throws<OutputFileException>(() => AtomicFile.Write(target, s =>
        {
            s.Write("partial"u8);
            // What the file system answers when the disk fills up or is remounted read-only under a running write.
            throw new IOException($"{error} : '{target}.tmp-1-x'");
        }));
        Assert.StartsWith(target + ": cannot be written", e.Message);
        Assert.Contains(reason, e.Message);
        Assert.DoesNotContain(".tmp-", e.Message);
        Assert.Equal("old", File.ReadAllText(target));
        Assert.Equal([target], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void A_folder_that_refuses_writes_is_named_without_the_temporary_file()
    {
        if (OperatingSystem.IsWindows()) return; // POSIX file modes and sysfs
        // As root a mode-555 folder is still writable, so sysfs (which refuses new files to everyone) stands in for it.
        using var dir = new TempDir();
        string folder;
        if (Environment.UserName == "root") folder = "/sys/kernel";
        else
        {
            folder = dir.File("locked");
            Directory.CreateDirectory(folder);
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        }
        var target = Path.Combine(folder, "safetune-out.json");
        var e = Assert.Throws<OutputFileException>(() => AtomicFile.WriteAllText(target, "data"));
        Assert.StartsWith(target + ": cannot be written", e.Message);
        Assert.DoesNotContain(".tmp-", e.Message);
        Assert.False(File.Exists(target));
        Assert.Empty(Directory.GetFiles(folder, "safetune-out.json*"));
    }
}

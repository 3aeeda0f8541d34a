using System.Text;
using System.Text.Json.Nodes;
using SafeTune.Onnx;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

/// <summary>
/// The hostile corpus: every input is built here, by script, at test time (symlinked folders, pipes, devices, <c>..</c> in
/// checkpoints, overlapping safetensors offsets, overflowing shapes). Each must give exit code 2 with one line naming
/// what is at fault, and leave the disk as it was.
/// </summary>
public sealed class HostileInputTests : IDisposable
{
    private static readonly string Model = Repo.Fixture("models", "llama_tiny_folded.onnx");
    private static readonly string Batch = Repo.Fixture("models", "llama_tiny_folded.batch.json");
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    private readonly TempDir _dir = new();
    private readonly TempDir _outside = new();

    public void Dispose()
    {
        _dir.Dispose();
        _outside.Dispose();
    }

    private static void MakeFifo(string path) => HostileFiles.MakeFifo(path);

    /// <summary>A model with one external initializer 'layer.weight' of <paramref name="dims"/> read from <paramref name="location"/>.</summary>
    private static void ModelWithExternal(string path, string location, params long[] dims) =>
        HostileFiles.ModelWithExternal(path, "layer.weight", location, dims.Length == 0 ? [4] : dims);

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    // --- Security: links out of a model folder --------------------------------------------------------------------------

    [Fact]
    public void A_linked_folder_cannot_leak_a_file_through_external_data()
    {
        File.WriteAllBytes(_outside.File("passwd"), new byte[16]);
        Directory.CreateSymbolicLink(_dir.File("linkdir"), _outside.Path);
        ModelWithExternal(_dir.File("leak.onnx"), "linkdir/passwd");
        CliRunner.Run(Limit, "inspect", _dir.File("leak.onnx"), "--json").AssertUserError("'layer.weight'", "outside the model's folder");
        var export = _dir.File("exported.onnx");
        CliRunner.Run(Limit, "fit", _dir.File("leak.onnx"), "--batch", Batch, "--export", export).AssertUserError("'layer.weight'");
        Assert.False(File.Exists(export));
    }

    [Fact]
    public void A_shard_index_cannot_reach_through_a_linked_folder()
    {
        var hf = _dir.File("hf");
        CopyFolder(Repo.Fixture("hf", "llama_sharded"), hf);
        File.Move(Path.Combine(hf, "model-00001-of-00002.safetensors"), _outside.File("model-00001-of-00002.safetensors"));
        Directory.CreateSymbolicLink(Path.Combine(hf, "ld"), _outside.Path);
        var index = Path.Combine(hf, "model.safetensors.index.json");
        File.WriteAllText(index, File.ReadAllText(index).Replace("\"model-00001-of-00002.safetensors\"", "\"ld/model-00001-of-00002.safetensors\"", StringComparison.Ordinal));
        var onnx = _dir.File("out.onnx");
        CliRunner.Run(Limit, "export", "--from-hf", hf, "--out", onnx).AssertUserError("model.safetensors.index.json", "ld/model-00001-of-00002.safetensors", "outside");
        Assert.False(File.Exists(onnx));
    }

    [Fact]
    public void A_model_safetensors_that_links_outside_is_refused()
    {
        var hf = _dir.File("hf");
        Directory.CreateDirectory(hf);
        File.Copy(Repo.Fixture("hf", "gpt2", "config.json"), Path.Combine(hf, "config.json"));
        File.Copy(Repo.Fixture("hf", "gpt2", "model.safetensors"), _outside.File("model.safetensors"));
        File.CreateSymbolicLink(Path.Combine(hf, "model.safetensors"), _outside.File("model.safetensors"));
        CliRunner.Run(Limit, "export", "--from-hf", hf, "--out", _dir.File("out.onnx")).AssertUserError("model.safetensors", "outside");
    }

    [Theory]
    [InlineData("../outside/model.onnx", "'..' is not allowed")]
    [InlineData("ld/model.onnx", "outside the model's folder")]
    public void A_genai_config_cannot_name_a_decoder_outside_its_folder(string filename, string reason)
    {
        File.Copy(Model, _outside.File("model.onnx"));
        var folder = _dir.File("genai");
        Directory.CreateDirectory(folder);
        Directory.CreateSymbolicLink(Path.Combine(folder, "ld"), _outside.Path);
        File.WriteAllText(Path.Combine(folder, "genai_config.json"), new JsonObject { ["model"] = new JsonObject { ["decoder"] = new JsonObject { ["filename"] = filename } } }.ToJsonString());
        CliRunner.Run(Limit, "generate", "--model", folder, "--prompt", "hi").AssertUserError("genai_config.json", "model.decoder.filename", reason);
    }

    // --- Pipes and devices as inputs --------------------------------------------------------------------------------

    [Fact]
    public void Pipes_and_devices_as_inputs_are_refused_without_blocking()
    {
        MakeFifo(_dir.File("pipe.onnx"));
        CliRunner.Run(Limit, "inspect", _dir.File("pipe.onnx")).AssertUserError("pipe.onnx", "named pipe");
        CliRunner.Run(Limit, "inspect", "/dev/zero").AssertUserError("/dev/zero", "a device");

        MakeFifo(_dir.File("data.bin"));
        ModelWithExternal(_dir.File("m.onnx"), "data.bin");
        CliRunner.Run(Limit, "inspect", _dir.File("m.onnx")).AssertUserError("'layer.weight'", "named pipe");

        var hf = _dir.File("hf");
        Directory.CreateDirectory(hf);
        File.Copy(Repo.Fixture("hf", "gpt2", "config.json"), Path.Combine(hf, "config.json"));
        MakeFifo(Path.Combine(hf, "model.safetensors"));
        CliRunner.Run(Limit, "export", "--from-hf", hf, "--out", _dir.File("out.onnx")).AssertUserError("model.safetensors", "named pipe");
    }

    // --- Outputs that are not regular files -------------------------------------------------------------------------

    [Fact]
    public void Outputs_onto_pipes_devices_folders_or_under_a_file_are_refused_and_left_alone()
    {
        MakeFifo(_dir.File("pipe.safetensors"));
        Directory.CreateDirectory(_dir.File("folder.safetensors"));
        File.CreateSymbolicLink(_dir.File("null.safetensors"), "/dev/null");
        File.WriteAllText(_dir.File("plain"), "keep");
        foreach (var (target, reason) in new[]
        {
            ("pipe.safetensors", "named pipe"), ("folder.safetensors", "a folder"), ("null.safetensors", "a device"), ("plain/grads.safetensors", "not a folder"),
        })
            CliRunner.Run(Limit, "grads", Model, "--batch", Batch, "--out", _dir.File(target)).AssertUserError(_dir.File(target), reason);
        Assert.Equal(FileKind.Fifo, SafePaths.KindOf(_dir.File("pipe.safetensors")));
        Assert.Empty(Directory.GetFileSystemEntries(_dir.File("folder.safetensors")));
        Assert.Equal("/dev/null", new FileInfo(_dir.File("null.safetensors")).LinkTarget);
        Assert.Equal("keep", File.ReadAllText(_dir.File("plain")));
    }

    // --- Checkpoints ------------------------------------------------------------------------------------------------

    private string Checkpointed()
    {
        var ckpt = _dir.File("ckpt");
        var r = CliRunner.Run(Limit, "fit", Model, "--batch", Batch, "--steps", "2", "--lr", "1e-2", "--checkpoint-dir", ckpt);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return ckpt;
    }

    private static void EditState(string ckpt, Action<JsonObject> edit)
    {
        var path = Path.Combine(ckpt, "state.json");
        var state = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(state);
        File.WriteAllText(path, state.ToJsonString());
    }

    private static CliResult Resume(string ckpt) =>
        CliRunner.Run(Limit, "fit", Model, "--batch", Batch, "--steps", "4", "--lr", "1e-2", "--checkpoint-dir", ckpt, "--resume");

    [Theory]
    [InlineData("../../../etc/passwd", "'..' is not allowed")]
    [InlineData("/etc/passwd", "absolute path")]
    [InlineData("ld/parameters-000002.safetensors", "outside the checkpoint folder")]
    public void Checkpoint_files_must_lie_inside_the_checkpoint_folder(string parameters, string reason)
    {
        var ckpt = Checkpointed();
        File.Copy(Path.Combine(ckpt, "parameters-000002.safetensors"), _outside.File("parameters-000002.safetensors"));
        Directory.CreateSymbolicLink(Path.Combine(ckpt, "ld"), _outside.Path);
        EditState(ckpt, s => s["parameters"] = parameters);
        Resume(ckpt).AssertUserError("state.json", "\"parameters\"", reason);
    }

    [Fact]
    public void A_checkpoint_patched_to_nan_or_past_the_plan_is_refused_naming_the_file()
    {
        var ckpt = Checkpointed();
        var file = Path.Combine(ckpt, "parameters-000002.safetensors");
        var bytes = File.ReadAllBytes(file);
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, bytes.Length - 4);
        File.WriteAllBytes(file, bytes);
        Resume(ckpt).AssertUserError("parameters-000002.safetensors", "checksum");

        EditState(ckpt, s => s.Remove("checksums"));
        Resume(ckpt).AssertUserError("parameters-000002.safetensors", "NaN");

        var fresh = _dir.File("ckpt");
        Directory.Delete(fresh, recursive: true);
        Checkpointed();
        EditState(fresh, s => s["step"] = 500);
        Resume(fresh).AssertUserError("state.json", "\"step\" 500", "4 steps");
    }

    [Fact]
    public void An_output_folder_that_refuses_writes_is_a_user_error_naming_it()
    {
        if (OperatingSystem.IsWindows()) return; // POSIX file modes and sysfs
        // As root a mode-555 folder is still writable, so sysfs (which refuses new files to everyone) stands in for it.
        string folder;
        if (Environment.UserName == "root") folder = "/sys/kernel";
        else
        {
            folder = _dir.File("locked");
            Directory.CreateDirectory(folder);
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        }
        var grads = Path.Combine(folder, "safetune-grads.safetensors");
        CliRunner.Run(Limit, "grads", Model, "--batch", Batch, "--out", grads).AssertUserError(grads, "cannot be written", "permission denied");
        Assert.Empty(Directory.GetFiles(folder, "safetune-grads*"));
        using var chat = new TinyChat();
        chat.Plain().Save(chat.File("m.onnx"));
        File.WriteAllText(chat.File("d.jsonl"), "{\"prompt\": \"a\", \"response\": \"b\"}\n");
        var run = Path.Combine(folder, "safetune-run");
        var train = CliRunner.Run(Limit, "train", "--model", chat.File("m.onnx"), "--tokenizer", chat.TokenizerPath, "--data", chat.File("d.jsonl"),
            "--out", run, "--steps", "1", "--lora", "2", "--threads", "1");
        Assert.True(train.ExitCode == 2, train.Stderr);
        Assert.Contains(run, train.Stderr);
        Assert.False(Directory.Exists(run));
    }

    // --- Safetensors and shapes ---------------------------------------------------------------------------------------

    [Fact]
    public void Overlapping_safetensors_offsets_are_refused_naming_the_tensor()
    {
        var hf = _dir.File("hf");
        CopyFolder(Repo.Fixture("hf", "gpt2"), hf);
        var path = Path.Combine(hf, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        int headerLength = (int)BitConverter.ToUInt64(bytes, 0);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerLength))!.AsObject();
        // Two tensors of the same size: point the second at the first one's bytes.
        var same = header.Where(p => p.Key != "__metadata__")
            .GroupBy(p => (long)p.Value!["data_offsets"]![1]! - (long)p.Value!["data_offsets"]![0]!)
            .First(g => g.Count() > 1).Take(2).ToArray();
        header[same[1].Key]!["data_offsets"] = same[0].Value!["data_offsets"]!.DeepClone();
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = json.Concat(Enumerable.Repeat((byte)' ', (8 - json.Length % 8) % 8)).ToArray();
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)padded.Length), .. padded, .. bytes.AsSpan(8 + headerLength)]);
        CliRunner.Run(Limit, "export", "--from-hf", hf, "--out", _dir.File("out.onnx")).AssertUserError("model.safetensors", "overlap");
    }

    [Theory]
    [InlineData(1L << 40, 1L << 40)]
    [InlineData((1L << 61) + 2, 2L)]
    public void Shapes_whose_size_overflows_are_refused_naming_the_tensor(long d0, long d1)
    {
        File.WriteAllBytes(_dir.File("w.bin"), new byte[16]);
        ModelWithExternal(_dir.File("big.onnx"), "w.bin", d0, d1);
        CliRunner.Run(Limit, "inspect", _dir.File("big.onnx"), "--json").AssertUserError("'layer.weight'", "64 bits");
    }
}

using System.Diagnostics;
using System.Globalization;
using SafeTune.Cli.Infrastructure;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

/// <summary>
/// Writes the file system refuses: a read-only file system, a full disk, an output whose folder is a file. Each gives exit
/// code 2 and one line naming the path. The read-only and full file systems are real: a small tmpfs mounted in a mount
/// namespace of the command's own (<c>unshare -m</c>), so nothing outside the test sees it. Mounting needs CAP_SYS_ADMIN
/// (root on Linux, outside the default Docker profile); where the process has it the tests run and must pass, elsewhere
/// they stop after checking the error mapper with the errno the kernel gives.
/// </summary>
public sealed class FileSystemRefusalTests : IDisposable
{
    private static readonly string Model = Repo.Fixture("models", "llama_tiny_folded.onnx");
    private static readonly string Batch = Repo.Fixture("models", "llama_tiny_folded.batch.json");
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);

    private readonly TempDir _dir = new();
    private readonly TinyChat _chat = new();

    public void Dispose()
    {
        _dir.Dispose();
        _chat.Dispose();
    }

    private string[] Train(string run)
    {
        var model = _chat.File("m.onnx");
        if (!File.Exists(model)) _chat.Plain().Save(model);
        var data = _chat.File("d.jsonl");
        File.WriteAllText(data, "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"c\", \"response\": \"d\"}\n");
        return ["train", "--model", model, "--tokenizer", _chat.TokenizerPath, "--template", "chatml", "--data", data, "--out", run,
            "--steps", "2", "--batch-size", "1", "--lora", "2", "--threads", "1", "--checkpoint-every", "1"];
    }

    [Fact]
    public void An_output_whose_folder_is_a_file_names_the_path()
    {
        var file = _dir.File("plain-file");
        File.WriteAllText(file, "keep");
        var grads = Path.Combine(file, "grads.safetensors");
        CliRunner.Run(Limit, "grads", Model, "--batch", Batch, "--out", grads).AssertUserError(grads);
        var run = Path.Combine(file, "run");
        CliRunner.Run(Limit, Train(run)).AssertUserError(run);
        Assert.Equal("keep", File.ReadAllText(file));
    }

    [Fact]
    public void The_error_mapper_gives_exit_2_for_a_full_disk_and_a_read_only_file_system()
    {
        if (OperatingSystem.IsWindows()) return; // errno values
        var (code, line) = CliErrors.Describe(new IOException("No space left on device : '/data/run/audit.jsonl'", 28));
        Assert.Equal(ExitCodes.UserError, code);
        Assert.Equal("safetune: error: /data/run/audit.jsonl: cannot be written (the disk is full).", line);
        (code, line) = CliErrors.Describe(new IOException("Read-only file system : '/mnt/ro/run'", 30));
        Assert.Equal(ExitCodes.UserError, code);
        Assert.Equal("safetune: error: /mnt/ro/run: cannot be written (the file system is read-only).", line);
        // A message without the path at its end is kept whole.
        Assert.Equal("safetune: error: No space left on device: cannot be written (the disk is full).", CliErrors.Describe(new IOException("No space left on device", 28)).Line);
        // Any other I/O failure is still an internal error.
        Assert.Equal(ExitCodes.InternalError, CliErrors.Describe(new IOException("Input/output error : '/x'", 5)).ExitCode);

        // The errno a real full device gives, through the same FileStream the run's logs use.
        if (!OperatingSystem.IsLinux()) return;
        var e = Assert.ThrowsAny<IOException>(() =>
        {
            using var s = new FileStream("/dev/full", FileMode.Append, FileAccess.Write, FileShare.Read);
            s.Write(new byte[4096]);
            s.Flush();
        });
        (code, line) = CliErrors.Describe(e);
        Assert.True(code == ExitCodes.UserError, $"{e.GetType().Name} HResult {e.HResult}: {e.Message}");
        Assert.Contains("/dev/full", line);
        Assert.Contains("the disk is full", line);
    }

    [Fact]
    public void A_read_only_file_system_is_a_user_error_naming_the_path()
    {
        var folder = _dir.File("ro");
        if (!CanMountPrivately(folder)) return;
        var under = PrivateTmpfs(folder, "ro,size=64k", fill: 0);
        var grads = Path.Combine(folder, "grads.safetensors");
        CliRunner.RunUnder(under, Limit, "grads", Model, "--batch", Batch, "--out", grads).AssertUserError(grads, "read-only");
        var run = Path.Combine(folder, "run");
        CliRunner.RunUnder(under, Limit, Train(run)).AssertUserError(run, "Read-only");
    }

    [Fact]
    public void A_full_disk_is_a_user_error_naming_the_path()
    {
        var folder = _dir.File("full");
        if (!CanMountPrivately(folder)) return;
        var grads = Path.Combine(folder, "grads.safetensors");
        CliRunner.RunUnder(PrivateTmpfs(folder, "size=64k", fill: 64 << 10), Limit, "grads", Model, "--batch", Batch, "--out", grads)
            .AssertUserError(grads, "is full");
        // One page left: options.json fits, the run's first log line or checkpoint does not.
        var run = Path.Combine(folder, "run");
        foreach (var fill in new[] { 64 << 10, 60 << 10 })
            CliRunner.RunUnder(PrivateTmpfs(folder, "size=64k", fill), Limit, Train(run)).AssertUserError(run, "full");
    }

    /// <summary>
    /// A launcher that mounts a tmpfs with <paramref name="options"/> at <paramref name="folder"/> in a mount namespace of
    /// its own, fills it with <paramref name="fill"/> bytes (as far as they fit), then runs the command.
    /// </summary>
    private static string[] PrivateTmpfs(string folder, string options, int fill) =>
    [
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        "mount -t tmpfs -o \"$1\" tmpfs \"$0\" || exit 97; if [ \"$2\" -gt 0 ]; then head -c \"$2\" /dev/zero > \"$0/fill\" 2>/dev/null; fi; shift 2; exec \"$@\"",
        folder, options, fill.ToString(CultureInfo.InvariantCulture),
    ];

    /// <summary>
    /// Whether a private tmpfs can be mounted here. Where it cannot although the process holds CAP_SYS_ADMIN on Linux
    /// with unshare installed, the platform should support it and the test fails, saying why.
    /// </summary>
    private static bool CanMountPrivately(string folder)
    {
        if (!OperatingSystem.IsLinux()) return false;
        Directory.CreateDirectory(folder);
        var psi = new ProcessStartInfo("unshare") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs \"$0\"", folder }) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception) { return false; } // no unshare
        using (p)
        {
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            if (p.ExitCode == 0) return true;
            Assert.False(HasSysAdmin(), $"this process holds CAP_SYS_ADMIN but cannot mount a private tmpfs: {stderr.Result}");
            return false;
        }
    }

    private static bool HasSysAdmin()
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        return line is not null && (ulong.Parse(line["CapEff:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture) & (1UL << 21)) != 0;
    }
}

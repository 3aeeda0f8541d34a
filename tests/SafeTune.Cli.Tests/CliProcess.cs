using System.Diagnostics;
using System.Text.RegularExpressions;

namespace SafeTune.Cli.Tests;

/// <summary>Runs <c>safetune</c> with extra environment variables, or keeps a <c>safetune serve</c> running for a test.</summary>
public static partial class CliProcess
{
    private static ProcessStartInfo StartInfo(IReadOnlyDictionary<string, string>? environment, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "safetune.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment.Remove("SAFETUNE_DEBUG");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return psi;
    }

    /// <summary>Runs to completion with <paramref name="environment"/> added to this process's.</summary>
    public static CliResult Run(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        using var p = Process.Start(StartInfo(environment, args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException("safetune " + string.Join(' ', args)); }
        return new CliResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Starts <c>safetune serve ARGS --port 0</c> and waits for the line with its URL.</summary>
    public static ServeProcess Serve(params string[] args) => new(Process.Start(StartInfo(null, ["serve", .. args, "--port", "0"]))!);

    [GeneratedRegex(@"http://127\.0\.0\.1:\d+/v1")]
    internal static partial Regex Url();
}

/// <summary>A running <c>safetune serve</c>; disposing stops it (SIGTERM via Kill on this process only).</summary>
public sealed class ServeProcess : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stderr;

    internal ServeProcess(Process process)
    {
        _process = process;
        _stderr = process.StandardError.ReadToEndAsync();
        var read = Task.Run(() =>
        {
            string? line;
            while ((line = process.StandardOutput.ReadLine()) is not null)
                if (CliProcess.Url().Match(line) is { Success: true } m) return m.Value;
            return null;
        });
        if (!read.Wait(TimeSpan.FromSeconds(60)) || read.Result is null)
        {
            Dispose();
            throw new InvalidOperationException("safetune serve printed no URL; stderr: " + (_stderr.IsCompleted ? _stderr.Result : ""));
        }
        BaseUrl = read.Result;
    }

    /// <summary><c>http://127.0.0.1:PORT/v1</c>.</summary>
    public string BaseUrl { get; }

    /// <summary>The server's resident set size in MB, read from <c>/proc/PID/status</c> (VmRSS).</summary>
    public double ResidentMegabytes()
    {
        var line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill();
        _process.WaitForExit(10_000);
        _process.Dispose();
    }
}

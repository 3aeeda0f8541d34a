using System.Diagnostics;

namespace SafeTune.Cli.Tests;

/// <summary>The result of one <c>safetune</c> process.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>
    /// Asserts a user error: exit code 2, one stderr line "safetune: error: ..." holding every fragment, no stack trace
    /// (warnings printed before it, such as a missing chat template, may precede it).
    /// </summary>
    public void AssertUserError(params string[] fragments)
    {
        Assert.True(ExitCode == 2, $"exit code {ExitCode}, stderr: {Stderr}");
        Assert.DoesNotContain("   at ", Stderr);
        var lines = Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("safetune: warning: ", StringComparison.Ordinal)).ToArray();
        var line = Assert.Single(lines);
        Assert.StartsWith("safetune: error: ", line);
        foreach (var f in fragments) Assert.Contains(f, line);
    }
}

/// <summary>Runs the real <c>safetune</c> executable (built next to the tests) in a child process.</summary>
public static class CliRunner
{
    public static CliResult Run(params string[] args) => Run(TimeSpan.FromMinutes(2), args);

    /// <summary>Runs with <paramref name="input"/> on standard input (closed afterwards).</summary>
    public static CliResult RunWithInput(string input, params string[] args) => Run(TimeSpan.FromMinutes(2), input, null, args);

    /// <summary>Runs with a time limit (the process is killed, and the test fails, when it runs longer).</summary>
    public static CliResult Run(TimeSpan limit, params string[] args) => Run(limit, null, null, args);

    /// <summary>Runs with a time limit and extra environment variables.</summary>
    public static CliResult Run(TimeSpan limit, IReadOnlyDictionary<string, string> environment, params string[] args) => Run(limit, null, environment, args);

    /// <summary>
    /// Runs <c>safetune</c> under a launcher: <paramref name="launcher"/> is a command line that ends by running the
    /// command line appended to it (such as <c>unshare -m sh -c '... &amp;&amp; exec "$@"' sh</c>).
    /// </summary>
    public static CliResult RunUnder(IReadOnlyList<string> launcher, TimeSpan limit, params string[] args) => Run(limit, null, null, args, launcher);

    private static CliResult Run(TimeSpan limit, string? input, IReadOnlyDictionary<string, string>? environment, string[] args, IReadOnlyList<string>? launcher = null)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "safetune.dll");
        var psi = new ProcessStartInfo(launcher is { Count: > 0 } ? launcher[0] : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = input is not null,
            UseShellExecute = false,
        };
        if (launcher is { Count: > 0 })
        {
            foreach (var a in launcher.Skip(1)) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add("dotnet");
        }
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment.Remove("SAFETUNE_DEBUG");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        if (input is not null)
        {
            p.StandardInput.Write(input);
            p.StandardInput.Close();
        }
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(limit)) { p.Kill(true); throw new TimeoutException("safetune " + string.Join(' ', args)); }
        return new CliResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}

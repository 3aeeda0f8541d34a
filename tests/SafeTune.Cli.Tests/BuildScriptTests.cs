using System.Diagnostics;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

/// <summary>
/// <c>build.ps1</c> explains itself: <c>-?</c>, <c>--help</c> and <c>help</c> print the help block, not only the syntax line;
/// what the tools write into a clone is ignored.
/// </summary>
public class BuildScriptTests
{
    [Theory]
    [InlineData("-?")]
    [InlineData("--help")]
    [InlineData("help")]
    public async Task Help_prints_the_synopsis_and_the_parameters(string flag)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = Repo.Root, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "pwsh", "-NoProfile", "-File", Path.Combine(Repo.Root, "build.ps1"), flag }) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(limit.Token);
        Assert.True(p.ExitCode == 0, await stderr);
        var text = await stdout;
        Assert.Contains("Restores, builds, tests, benchmarks or publishes SafeTune.", text);
        Assert.Contains("-Fast", text);
    }

    [Fact]
    public void The_demo_s_default_output_folder_is_ignored_in_the_repository_root()
    {
        // Run from a clone, `safetune demo` writes its report into the current folder's safetune-demo/.
        var folder = new SafeTune.Cli.Commands.Demo.DemoSettings().Out;
        Assert.Equal("safetune-demo", folder);
        Assert.Contains($"/{folder}/", File.ReadAllLines(Path.Combine(Repo.Root, ".gitignore")).Select(l => l.Trim()));
    }
}

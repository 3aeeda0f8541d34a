using System.Globalization;
using SafeTune.Onnx;
using SafeTune.Safety.Metrics;
using ScottPlot;

namespace SafeTune.Safety.Reports;

/// <summary>One ROC curve on a plot.</summary>
/// <param name="Label">The legend text before the AUROC (for example the evaluation set's name).</param>
/// <param name="Points">The curve, from <see cref="BinaryMetrics.RocCurve"/>.</param>
/// <param name="Auroc">The area under it, shown in the legend.</param>
public sealed record RocSeries(string Label, IReadOnlyList<RocPoint> Points, double Auroc);

/// <summary>A marked operating point: the rates at a decision threshold.</summary>
/// <param name="Threshold">The threshold.</param>
/// <param name="FalsePositiveRate">The false-positive rate reached at it.</param>
/// <param name="TruePositiveRate">The recall reached at it.</param>
public sealed record OperatingPoint(double Threshold, double FalsePositiveRate, double TruePositiveRate);

/// <summary>ROC curves as PNG: each curve with its AUROC in the legend, the chance diagonal, and an optional operating point.</summary>
public static class RocPlot
{
    /// <summary>Draws the curves (and the operating point, on the first curve) and writes the PNG atomically.</summary>
    /// <exception cref="UserInputException">No curve, an empty curve, or a bad path.</exception>
    public static void Save(string path, IReadOnlyList<RocSeries> curves, OperatingPoint? point = null, string title = "ROC curve",
        int width = Plots.DefaultWidth, int height = Plots.DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(curves);
        if (curves.Count == 0) throw new UserInputException("no ROC curve to draw.");
        var inv = CultureInfo.InvariantCulture;
        var plot = new Plot();
        var chance = plot.Add.Line(0, 0, 1, 1);
        chance.LineColor = Colors.Gray;
        chance.LinePattern = LinePattern.Dashed;
        chance.LegendText = "chance (AUROC 0.5)";
        var palette = new ScottPlot.Palettes.Category10();
        for (int c = 0; c < curves.Count; c++)
        {
            var s = curves[c];
            if (s.Points.Count == 0) throw new UserInputException($"the ROC curve '{s.Label}' has no points.");
            var line = plot.Add.Scatter(s.Points.Select(p => p.Fpr).ToArray(), s.Points.Select(p => p.Tpr).ToArray());
            line.MarkerSize = 0;
            line.LineWidth = 2;
            line.Color = palette.GetColor(c);
            line.LegendText = string.Create(inv, $"{s.Label} (AUROC {s.Auroc:F3})");
        }
        if (point is { } op)
        {
            var m = plot.Add.Marker(op.FalsePositiveRate, op.TruePositiveRate, MarkerShape.FilledCircle, 11);
            m.Color = Colors.Red;
            m.LegendText = string.Create(inv, $"threshold {op.Threshold:G3}: TPR {op.TruePositiveRate:F3}, FPR {op.FalsePositiveRate:F3}");
        }
        plot.Axes.SetLimits(-0.01, 1.01, -0.01, 1.01);
        plot.XLabel("false-positive rate (harmless prompts flagged)");
        plot.YLabel("true-positive rate (harmful prompts flagged)");
        plot.Title(title);
        plot.ShowLegend(Alignment.LowerRight);
        Plots.SavePng(plot, path, width, height);
    }
}

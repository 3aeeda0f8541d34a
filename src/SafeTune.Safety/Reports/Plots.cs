using SafeTune.Onnx;
using ScottPlot;

namespace SafeTune.Safety.Reports;

/// <summary>Shared plot output: PNG files written atomically, in one size and style for every report.</summary>
public static class Plots
{
    /// <summary>The default image width in pixels.</summary>
    public const int DefaultWidth = 720;

    /// <summary>The default image height in pixels.</summary>
    public const int DefaultHeight = 600;

    /// <summary>Renders <paramref name="plot"/> as a PNG and writes it to <paramref name="path"/> atomically (temp + rename).</summary>
    /// <exception cref="UserInputException">The path does not end in <c>.png</c> or a size is not positive.</exception>
    public static void SavePng(Plot plot, string path, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(plot);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!path.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) throw new UserInputException($"{path}: a plot is written as PNG; use a .png file name.");
        if (width < 1 || height < 1) throw new UserInputException($"the image size {width} x {height} must be positive.");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null && !Directory.Exists(dir)) throw new DirectoryNotFoundException($"{path}: the folder {dir} does not exist.");
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(width, height, ImageFormat.Png));
    }
}

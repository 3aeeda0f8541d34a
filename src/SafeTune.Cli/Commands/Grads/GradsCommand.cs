using System.Globalization;
using SafeTune.Autodiff;
using SafeTune.Autodiff.Rules;
using SafeTune.Cli.Infrastructure;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Grads;

/// <summary><c>safetune grads MODEL --batch BATCH.json --out GRADS.safetensors [--json]</c>.</summary>
public sealed class GradsCommand : Command<GradsSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, GradsSettings settings, CancellationToken cancellationToken)
    {
        var model = ModelSource.LoadTrainable(settings.Model);
        var batch = TokenBatch.Load(settings.Batch);
        var config = new SessionConfig { Provider = SessionConfig.ParseProvider(settings.Provider) };
        var options = new BackwardOptions
        {
            EmbeddingGradient = settings.EmbeddingGrad == "onehot" ? EmbeddingGradient.OneHotMatMul : EmbeddingGradient.ScatterAdd,
        };
        var result = GradientEvaluator.Run(model, batch, config, options);
        SafeTensors.Write(settings.Out, result.Gradients, new Dictionary<string, string>
        {
            ["loss"] = result.Loss.ToString("R", CultureInfo.InvariantCulture),
            ["producer"] = "safetune grads",
        });
        long parameters = result.Gradients.Sum(g => g.ElementCount);
        if (settings.Json)
        {
            JsonOut.Write(w =>
            {
                w.WriteNumber("loss", result.Loss);
                w.WriteNumber("parameters", parameters);
                w.WriteNumber("gradients", result.Gradients.Count);
                w.WriteNumber("ms", Math.Round(result.Milliseconds, 1));
                w.WriteString("out", settings.Out);
            });
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        AnsiConsole.MarkupLine($"loss [bold]{result.Loss.ToString("G7", inv)}[/] on {batch.BatchSize} x {batch.SequenceLength} tokens; " +
            $"{result.Gradients.Count} gradients ({parameters.ToString("N0", inv)} values) in {result.Milliseconds.ToString("F0", inv)} ms -> {Markup.Escape(settings.Out)}");
        var table = new Table().AddColumns("parameter", "shape", "|grad|_2", "max |grad|");
        foreach (var g in result.Gradients.OrderByDescending(Norm).Take(10))
            table.AddRow(Markup.Escape(g.Name), Markup.Escape("[" + string.Join(", ", g.Dims) + "]"), Norm(g).ToString("G4", inv), g.ToDoubles().Max(Math.Abs).ToString("G4", inv));
        table.Title = new TableTitle("Largest gradients");
        AnsiConsole.Write(table);
        return ExitCodes.Ok;
    }

    private static double Norm(TensorData t) => Math.Sqrt(t.ToDoubles().Sum(x => x * x));
}

using SafeTune.Autodiff;
using SafeTune.Cli.Infrastructure;
using SafeTune.Onnx.Inspection;
using Spectre.Console;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Commands.Inspect;

/// <summary><c>safetune inspect MODEL [--json]</c>: what SafeTune can tell about a model without running it.</summary>
public sealed class InspectCommand : Command<InspectSettings>
{
    /// <inheritdoc/>
    public override int Execute(CommandContext context, InspectSettings settings, CancellationToken cancellationToken)
    {
        var model = ModelSource.Load(settings.Model);
        var summary = ModelSummary.Of(model) with
        {
            NonDifferentiable = [.. BackwardBuilder.FindNonDifferentiable(model).Select(m => m.OpType).Distinct().Order(StringComparer.Ordinal)],
        };
        if (settings.Json) InspectOutput.WriteJson(summary);
        else InspectOutput.WriteTables(settings.Model, summary, AnsiConsole.Console);
        return ExitCodes.Ok;
    }
}

using SafeTune.Cli.Commands.Inspect;
using SafeTune.Cli.Infrastructure;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("safetune");
    config.PropagateExceptions();
    config.AddCommand<InspectCommand>("inspect")
        .WithDescription("Show a model's inputs, outputs, opsets, op histogram, parameter count and per-layer hidden-state tensors.")
        .WithExample("inspect", "model.onnx")
        .WithExample("inspect", "model.onnx", "--json")
        .WithExample("inspect", "builtin:tiny-llama");
});
return CliErrors.Run(() => app.Run(args));
